"""Training states: atomic saves, keep-last-N, and finding what to resume.

    <run>/state/step_<n>/    accelerator.save_state (model, optimizer, scheduler, RNG of
                             every process) plus trainer.json (step, epoch, digest)

A save is written to a hidden side folder and renamed into place only when every
process has finished writing, so a crash mid-save leaves the previous state whole;
a state without trainer.json is never resumed from. The data order is rebuilt from
the seed and the step, and each item's augmentation from (seed, epoch, index)
(batches.py), so a state holds no sampler.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import time
from pathlib import Path
from typing import Optional

import yaml
from accelerate import Accelerator

from subdistill.config import Config
from subdistill.errors import UserError
from subdistill.runs import CONFIG_FILE

STATE_DIR = "state"
TRAINER_FILE = "trainer.json"
STEP_NAME = re.compile(r"^step_(\d+)$")


# Settings that steer one launch without changing what it trains: a resume may change them.
LAUNCH_ONLY = ("run", "resume", "train.stop_at", "train.log_every", "train.eval_every", "train.save_every",
               "train.keep_last", "data.num_workers")


def steady_settings(config: Config) -> dict:
    from subdistill.recipes import flatten

    return {key: value for key, value in flatten(config.to_dict()).items() if key not in LAUNCH_ONLY}


def run_digest(config: Config) -> str:
    """The config digest without the settings that only steer this launch (LAUNCH_ONLY)."""
    text = json.dumps(steady_settings(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _run_config(run_dir: Path) -> Optional[Config]:
    from subdistill.runs import read_config

    try:
        return read_config(run_dir)[0]
    except (OSError, UserError, yaml.YAMLError, TypeError, ValueError, AttributeError):
        return None


def _differences(config: Config, theirs: Config) -> list[str]:
    ours, old = steady_settings(config), steady_settings(theirs)
    return sorted(key for key in ours.keys() | old.keys() if ours.get(key) != old.get(key))


def _listed(keys: list[str], most: int = 6) -> str:
    return ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")


def resume_command(run_config: Config, run_dir: Path) -> str:
    """The launch that continues ``run_dir`` to its end with its own settings (a pause's stop_at dropped), quoted."""
    from subdistill.recipes import command_arguments

    to_end = dataclasses.replace(run_config, train=dataclasses.replace(run_config.train, stop_at=0))
    return f"accelerate launch subdistill/train.py {command_arguments(to_end)} {shlex.quote(f'resume={run_dir}')}"


def check_resume_settings(config: Config, run_dir: Path) -> None:
    """A run continues with the settings it started with; anything else would mix two trainings in one record."""
    theirs = _run_config(run_dir)
    if theirs is None:
        raise UserError(f"resume: {run_dir / CONFIG_FILE} is missing or unreadable, so the settings {run_dir} was "
                        "trained with are unknown and it cannot be continued safely; start a new run")
    differ = _differences(config, theirs)
    if differ:
        raise UserError(f"resume: {run_dir} was trained with other settings ({_listed(differ)}); "
                        f"continue it with: {resume_command(theirs, run_dir)}")


def state_path(run_dir: Path, step: int) -> Path:
    return run_dir / STATE_DIR / f"step_{step}"


def list_states(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete states of a run, oldest first."""
    folder = Path(run_dir) / STATE_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = STEP_NAME.match(path.name)
        if match and (path / TRAINER_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_trainer(state: Path) -> dict:
    return json.loads((Path(state) / TRAINER_FILE).read_text())


def save_state(accelerator: Accelerator, run_dir: Path, step: int, record: dict, keep_last: int) -> Path:
    """Write the full state for ``step`` atomically, then drop all but the last ``keep_last``."""
    final = state_path(run_dir, step)
    partial = final.with_name(f".{final.name}.partial")
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)  # left by a crash during an earlier save
    accelerator.wait_for_everyone()

    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / TRAINER_FILE).write_text(json.dumps({**record, "step": step, "time": time.time()}, indent=2))
        _replace_dir(partial, final)
        prune(run_dir, keep_last)
    accelerator.wait_for_everyone()
    return final


def _replace_dir(source: Path, target: Path) -> None:
    """Rename source to target; an older target (a resumed run saving the same step) goes away."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old)
    else:
        os.replace(source, target)


def prune(run_dir: Path, keep_last: int) -> None:
    states = list_states(run_dir)
    for _, path in states[: max(0, len(states) - max(1, keep_last))]:
        shutil.rmtree(path)


def latest_state(run_dir: Path) -> Optional[Path]:
    states = list_states(run_dir)
    return states[-1][1] if states else None


def _run_recipe(run_dir: Path) -> Optional[str]:
    try:
        return (yaml.safe_load((run_dir / CONFIG_FILE).read_text()) or {}).get("recipe")
    except (OSError, yaml.YAMLError):
        return None


def find_resume(config: Config, output_root: Path, run_dir: Optional[Path]) -> tuple[Path, Path]:
    """(run folder, state folder) that ``config.resume`` names.

    resume: "latest" (the given run folder, else the run of this recipe and these settings
    with the newest state under output_root), a run folder, or a state folder.
    """
    resume, recipe = config.resume, config.recipe
    if resume != "latest":
        path = Path(resume).expanduser()
        if (path / TRAINER_FILE).is_file():
            return path.parent.parent, path
        state = latest_state(path) if path.is_dir() else None
        if state is None:
            raise UserError(f"resume={resume}: neither a state folder (with {TRAINER_FILE}) nor a run with states")
        return path, state

    if run_dir is not None:
        state = latest_state(run_dir)
        if state is None:
            raise UserError(f"resume=latest: {run_dir} holds no complete training state")
        return run_dir, state
    candidates = []  # (state time, folder, state, the run's config or None)
    for folder in Path(output_root).iterdir() if Path(output_root).is_dir() else []:
        state = latest_state(folder) if folder.is_dir() else None
        if state is not None and _run_recipe(folder) == recipe:
            candidates.append((state.stat().st_mtime, folder, state, _run_config(folder)))
    if not candidates:
        raise UserError(f"resume=latest: no run of recipe {recipe} with a saved state under {output_root}")
    # Only a run trained with these settings is "the" run to continue; a baseline or side run is not.
    matching = [c[:3] for c in candidates if c[3] is not None and not _differences(config, c[3])]
    if not matching:
        _, newest, _, theirs = max(candidates, key=lambda c: c[0])
        others = ", ".join(sorted(c[1].name for c in candidates))
        hint = ""
        if theirs is not None:
            hint = (f"; the newest, {newest.name}, differs in {_listed(_differences(config, theirs))} and "
                    f"continues with: {resume_command(theirs, newest)}")
        raise UserError(f"resume=latest: no run of recipe {recipe} under {output_root} was trained with these "
                        f"settings (runs with other settings: {others}){hint}")
    _, folder, state = max(matching)
    return folder, state
