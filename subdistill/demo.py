"""``subdistill demo`` (``make demo``): the whole flow on the embedded default recipe.

  fine-tune the teacher -> validate the targets -> distil the subspace student
  -> the same student as cross-entropy, Hinton KD and FitNets baselines
  -> evaluate all of them side by side -> export the subspace student

Training steps run as the real command (``python subdistill/train.py ...``) in a
subprocess, exactly as a user would; every step is skipped when its output is
already there, so a second demo reuses the teacher, features, validation and students.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from subdistill.config import Config
from subdistill.errors import UserError
from subdistill.recipes import resolve

DEFAULT_RECIPE = "fmnist_demo"
BASELINES = ("ce", "kd", "fitnets")
TRAIN_SCRIPT = Path(__file__).resolve().parent / "train.py"
SUMMARY_FILE = "demo_summary.md"


def banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def train(argv: list[str], extra: list[str]) -> None:
    """One launch of the real training command; its output streams through."""
    command = [sys.executable, str(TRAIN_SCRIPT), *argv, *extra]
    print("$ " + " ".join(command[1:]), flush=True)
    if subprocess.run(command).returncode != 0:
        raise UserError(f"training step failed: {' '.join(extra)} (its output is above)")


def finished(run_dir: Path) -> bool:
    return (run_dir / "student.safetensors").is_file() and (run_dir / "summary.json").is_file()


def train_unless_finished(run_dir: Path, argv: list[str], extra: list[str]) -> None:
    if finished(run_dir):
        print(f"finished student found: {run_dir}; nothing to do")
    else:
        train(argv, extra)


def validate_step(config: Config) -> Config:
    """Validate unless a record for this teacher, data and K exists; returns the config to distil with."""
    from subdistill import gate
    from subdistill.validate import run_validation

    record = gate.record_path(config, gate.record_key(config, config.projection.k))
    if record.is_file():
        print(f"validation of K={config.projection.k} found: {record}")
    else:
        run_dir, _ = run_validation(dataclasses.replace(config, run=f"{config.run}-validate"))
        print(f"report: {run_dir / 'report.md'}")
    try:
        gate.check_gate(config)
        return config
    except UserError as verdict:
        # The gate is the point of validation: say plainly that it refused, then go on for the demo's sake.
        print(f"gate: {verdict}")
        print("demo: continuing with validate.required=false to show the rest of the flow")
        return dataclasses.replace(config, validate=dataclasses.replace(config.validate, required=False))


def summary_table(evaluation: dict, export_folder: Path, export_report: dict, seconds: float) -> str:
    """The demo's last word: every accuracy that matters with its model's size and latency, and the export."""
    from subdistill.evaluation.table import human, pct

    teacher, k = evaluation["teacher"], evaluation["k"]
    rows: list[tuple[str, Optional[float], str, Optional[dict]]] = [
        ("teacher", teacher.get("own_head_accuracy"), "its own head", teacher.get("cost")),
        (f"teacher, full-width probe (D={teacher['D']})", (teacher["probes"].get("full") or {}).get("accuracy"),
         "linear probe on h", None),
        (f"teacher, JL-{k} probe", (teacher["probes"].get("jl") or {}).get("accuracy"), "linear probe on t", None),
    ]
    for student in evaluation["students"]:
        if student["objective"] == "subspace":
            rows.append(("student (subspace)", student["jl_head_accuracy"], f"teacher's JL-{k} head, unchanged",
                         student["cost"]))
            rows.append(("student (subspace)", student["fresh_probe"]["accuracy"], "fresh probe on s(x)", None))
        elif student.get("own_head_accuracy") is not None:
            rows.append((f"baseline {student['objective']}", student["own_head_accuracy"], "its own head",
                         student["cost"]))
        else:
            rows.append((f"baseline {student['objective']}", student["fresh_probe"]["accuracy"],
                         "fresh probe on s(x)", student["cost"]))
    lines = [
        f"demo summary: recipe {evaluation['recipe']}, K={k}, {evaluation['test_examples']} test examples",
        "",
        "| model | accuracy (%) | read through | parameters | latency b=1 (ms) |",
        "|---|---|---|---|---|",
    ]
    for label, accuracy, how, cost in rows:
        size = human(cost["parameters"]) if cost else ""
        latency = f"{cost['latency_ms']:.2f}" if cost else ""
        lines.append(f"| {label} | {pct(accuracy)} | {how} | {size} | {latency} |")
    files = ", ".join(name for name in export_report.get("files", []) if not name.startswith("."))
    lines += ["", f"exported student: {export_folder} ({files})", f"demo wall time: {seconds:.0f} s"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if not any(arg.startswith("recipe=") for arg in argv):
        argv = [f"recipe={DEFAULT_RECIPE}", *argv]
    # Each run gets its own name below, so the user's run= only sets the prefix.
    prefix = next((arg.split("=", 1)[1] for arg in argv if arg.startswith("run=")), "")
    argv = [arg for arg in argv if not arg.startswith("run=")]
    config = resolve(argv)
    config = dataclasses.replace(config, run=prefix or f"{config.recipe}-demo")
    root, name = Path(config.output_root), config.run
    start = time.perf_counter()

    banner("1/6 teacher fine-tuning")
    if config.teacher.finetune:
        train(argv, ["train.stage=finetune"])

    banner("2/6 teacher_features and validation of the targets")
    config = validate_step(config)
    gate_off = [] if config.validate.required else ["validate.required=false"]

    banner("3/6 subspace student")
    train_unless_finished(root / name, argv, [f"run={name}", *gate_off])
    banner("4/6 baselines: " + ", ".join(BASELINES))
    for objective in BASELINES:
        train_unless_finished(root / f"{name}-{objective}", argv, [f"run={name}-{objective}",
                                                                   f"train.objective={objective}"])

    banner("5/6 evaluation")
    from subdistill.evaluate import evaluate_run
    from subdistill.evaluation.table import markdown

    evaluation = evaluate_run(root / name, [root / f"{name}-{o}" for o in BASELINES], repeats=5, threads=1)
    print(markdown(evaluation))

    banner("6/6 export")
    from subdistill.export import export_run, summary

    folder, report = export_run(root / name, {"formats": ["safetensors", "onnx"]})
    print(summary(folder, report))

    seconds = time.perf_counter() - start
    banner("summary")
    text = summary_table(evaluation, folder, report, seconds)
    (root / name / SUMMARY_FILE).write_text(text)
    print(text, end="")
    print(f"(also in {root / name / SUMMARY_FILE}; everything is under {root}/)")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1:])
