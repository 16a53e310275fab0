"""The ``subdistill`` console script: ``subdistill COMMAND recipe=NAME key=value ...``.

Every command takes the same recipe arguments. A mistake a user can fix (bad
recipe, key, value or path) is printed as one line and exits with code 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable

from subdistill import __version__
from subdistill.errors import UserError
from subdistill.recipes import available_recipes

# command -> (module, one-line help); each module has main(argv: list[str]) -> None
COMMANDS = {
    "config": ("subdistill.show_config", "print the resolved config of a recipe"),
    "demo": ("subdistill.demo", "the main job on the embedded default recipe"),
    "train": ("subdistill.train", "fine-tune a teacher or distil a student"),
    "features": ("subdistill.features", "extract and cache teacher_features"),
    "validate": ("subdistill.validate", "probe full / JL / PCA / learned features and write the validity report"),
    "evaluate": ("subdistill.evaluate", "judge a student against the probe baselines and the distillation baselines"),
    "export": ("subdistill.export", "export a student as a self-contained folder (safetensors, ONNX, TorchScript)"),
}


# Commands that act on a finished run take run= instead of a recipe.
RUN_ARGUMENTS = {
    "evaluate": "run=NAME_OR_PATH [baselines=[run,...]] [output_root=DIR] [repeats=N] [threads=N]",
    "export": "run=NAME_OR_PATH [export.formats=[safetensors,onnx,torchscript]] [export.output=DIR] [output_root=DIR]",
}


def usage() -> str:
    lines = ["usage: subdistill COMMAND recipe=NAME [key=value ...]", "", "commands:"]
    lines += [f"  {name:10s} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def guarded(entry: Callable[[list[str]], None], argv: list[str]) -> None:
    """Run an entry point; a UserError becomes one line on stderr and exit code 2."""
    try:
        entry(argv)
    except UserError as err:
        # One line whatever the message carries (library errors often span several).
        message = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"subdistill: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    if argv[0] in ("-V", "--version"):
        print(f"subdistill {__version__}")
        return
    command, rest = argv[0], argv[1:]
    if any(arg in ("-h", "--help") for arg in rest):
        arguments = RUN_ARGUMENTS.get(command, "recipe=NAME [key=value ...]")
        print(f"usage: subdistill {command} {arguments}\n\n{COMMANDS.get(command, ('', ''))[1]}")
        if command not in RUN_ARGUMENTS:
            print("recipes: " + ", ".join(available_recipes()))
            print("keys: subdistill config recipe=NAME prints them all")
        return
    if command not in COMMANDS:
        print(f"subdistill: error: unknown command {command!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(COMMANDS[command][0])
    guarded(module.main, rest)


if __name__ == "__main__":
    main()
