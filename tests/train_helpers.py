"""Launching tiny training runs for the tests: in this process, as a script, or under accelerate launch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent
TRAIN_SCRIPT = REPO / "subdistill" / "train.py"

# R of seed 42, K=32, D=512 (resnet18): the golden fingerprint of the foundation issue.
FMNIST_R_SHA256 = "e97f3de04c7c6ba86354db4402b91d4402ede9c72aabed29a96dd7d635a798ba"


def fmnist_args(root: Path, *extra: str) -> list[str]:
    """Fashion-MNIST, tiny: 64 training images (8 steps per epoch at batch 8), 33 test images,
    augmentation on, online targets from the random-init resnet18 teacher, 10 steps (two epochs).
    ``extra`` key=value pairs replace these settings or add to them."""
    settings = {
        "recipe": "fmnist_k32",
        "tiny": "true",
        "teacher.finetune": "false",
        "validate.required": "false",
        "train.targets": "online",
        "train.epochs": "2",
        "train.max_steps": "10",
        "train.log_every": "2",
        "train.eval_every": "5",
        "train.save_every": "2",
        "data.limit_test": "33",
        "output_root": str(root),
    }
    for pair in extra:
        key, _, value = pair.partition("=")
        settings[key] = value
    return [f"{key}={value}" for key, value in settings.items()]


def run_inline(args: list[str]) -> dict:
    """Resolve and run in this process; Accelerate's process-wide state is reset afterwards."""
    from accelerate.state import AcceleratorState, GradientState

    from subdistill.recipes import resolve
    from subdistill.train import run

    try:
        return run(resolve(args))
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def launch_command(args: list[str], processes: int = 1) -> list[str]:
    """`python subdistill/train.py ...` for one process, `accelerate launch --multi_gpu ...` for several.

    Without a GPU, --multi_gpu starts gloo processes; --cpu --num_processes N would silently start one,
    so callers must check the process count the run reports.
    """
    if processes == 1:
        return [sys.executable, str(TRAIN_SCRIPT), *args]
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert launcher, "accelerate's launcher should be installed beside this Python"
    return [
        launcher, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        str(TRAIN_SCRIPT), *args,
    ]


def launch_env() -> dict:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def launch(args: list[str], processes: int = 1, timeout: int = 300, cwd: Optional[Path] = None):
    return subprocess.run(
        launch_command(args, processes),
        capture_output=True, text=True, env=launch_env(), timeout=timeout, cwd=cwd or REPO,
    )


def student_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(run_dir) / "student.safetensors"))


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[key].double() - b[key].double()).abs().max().item() for key in a)
