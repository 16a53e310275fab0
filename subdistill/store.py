"""Where each step of the flow keeps what it made, so the next step finds it and nothing is computed twice.

  checkpoints/
    teachers/<recipe>-<key>/   a fine-tuned teacher (teacher.safetensors, teacher.json) and its training state
    features/<key>/            cached teacher_features per split (written by the feature cache)
    <run>/                     one launch of distillation, validation, evaluation or export

A teacher's key hashes everything that decides its weights: the teacher, data and
fine-tuning settings and the seed. Nothing else (K, the student, the probes) changes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from subdistill.config import Config, TeacherConfig
from subdistill.errors import UserError

TEACHER_FILE = "teacher.safetensors"
# What decides a fine-tuned teacher (teacher_key), as command-line prefixes, plus where it is kept.
TEACHER_SETTINGS = ("teacher.", "data.", "finetune.", "seed", "output_root")


def _digest(tree: dict) -> str:
    return hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()[:12]


def teacher_key(config: Config) -> str:
    """Hash of what decides a fine-tuned teacher's weights."""
    data = dataclasses.asdict(config.data)
    data.pop("num_workers")  # loader workers never change the result
    tree = {
        "teacher": dataclasses.asdict(config.teacher),
        "data": data,
        "finetune": dataclasses.asdict(config.finetune),
        "seed": config.seed,
        "tiny": config.tiny,
    }
    return _digest(tree)


def teacher_dir(config: Config) -> Path:
    return Path(config.output_root) / "teachers" / f"{config.recipe}-{teacher_key(config)}"


def effective_teacher(config: Config) -> TeacherConfig:
    """The teacher the later steps use: the fine-tuned checkpoint when the recipe asks for one."""
    if not config.teacher.finetune:
        return config.teacher
    folder = teacher_dir(config)
    if not (folder / TEACHER_FILE).is_file():
        from subdistill.recipes import command_arguments

        arguments = command_arguments(config, only=TEACHER_SETTINGS)
        raise UserError(
            f"recipe {config.recipe} uses a fine-tuned teacher, and none is at {folder}; make it first with: "
            f"accelerate launch subdistill/train.py {arguments} train.stage=finetune"
        )
    return dataclasses.replace(config.teacher, source="checkpoint", name=str(folder), finetune=False)
