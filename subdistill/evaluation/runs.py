"""Finding a run folder by name or path, and opening the finished student inside it.

A finished run holds config.yaml, student.json and student.safetensors (written only
when training reached its last step); a baseline run also holds its head
(head.safetensors, objectives ce and kd) or regressor (fitnets).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from torch import nn

from subdistill.config import Config
from subdistill.errors import UserError
from subdistill.runs import CONFIG_FILE, read_config
from subdistill.training.baselines import load_head
from subdistill.training.checkpoints import STATE_DIR, resume_command
from subdistill.training.students import SPEC_FILE, WEIGHTS_FILE, StudentSpec, load_student


def resolve_run(text: str, output_root: str | Path) -> Path:
    """A run folder from a path, or from a name under output_root."""
    if not text:
        raise UserError("name the run with run=NAME (a folder under the output root) or run=PATH")
    path = Path(text).expanduser()
    for candidate in (path, Path(output_root) / text):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    root = Path(output_root)
    # Distillation runs only: validation and teacher folders hold a config too, but no student.
    folders = list(root.iterdir()) if root.is_dir() else []
    trained = [p for p in folders if (p / SPEC_FILE).is_file() or (p / STATE_DIR).is_dir()]
    runs = sorted(p.name for p in trained if (p / CONFIG_FILE).is_file())
    listing = f"runs under {root}: {', '.join(runs)}" if runs else f"no distillation runs under {root}"
    raise UserError(f"run {text!r} is neither a run folder nor a run name ({listing})")


@dataclass
class FinishedRun:
    folder: Path
    config: Config
    provenance: dict
    model: nn.Module  # the student body x -> (B, K), in eval mode on the CPU
    spec: StudentSpec
    own_head: Optional[nn.Linear]  # K -> C of a ce or kd run

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def objective(self) -> str:
        return self.config.train.objective

    @property
    def k(self) -> int:
        return self.spec.k


def open_run(folder: Path) -> FinishedRun:
    """The finished student of a run (loaded strictly), or a UserError saying what is missing."""
    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file():
        raise UserError(f"{folder} is not a run folder (no {CONFIG_FILE})")
    config, provenance = read_config(folder)
    if config.train.stage != "distill":
        raise UserError(f"{folder} is a {config.train.stage} run; evaluate and export take a distillation run")
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / SPEC_FILE).is_file():
        raise UserError(
            f"{folder} holds no finished student ({WEIGHTS_FILE} and {SPEC_FILE} are written at the last step); "
            f"finish it with: {resume_command(config, folder)}"
        )
    model, spec = load_student(folder)
    if spec.k != config.projection.k:
        raise UserError(f"{folder / SPEC_FILE} gives K={spec.k}, its {CONFIG_FILE} projection.k={config.projection.k}")
    own_head = load_head(folder, spec.k) if config.train.objective in ("ce", "kd") else None
    if config.train.objective in ("ce", "kd") and own_head is None:
        raise UserError(f"{folder} is a {config.train.objective} run without its head (head.safetensors)")
    return FinishedRun(folder, config, provenance, model, spec, own_head)
