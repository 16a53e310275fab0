"""The one place that decides how raw examples become teacher inputs.

Training, evaluation and feature extraction must feed a teacher exactly the same
tensors, so they all ask this module: image statistics (the teacher's own when it
was pretrained or loaded from weights, else the dataset's) and, for text, the
tokenizer's collate function.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import torch

from subdistill.config import Config, TeacherConfig
from subdistill.data import modality, native_stats, text_collate


def uses_teacher_stats(teacher_cfg: TeacherConfig) -> bool:
    """A teacher trained elsewhere (hub or a weights file) expects its own normalisation."""
    return bool(teacher_cfg.pretrained or teacher_cfg.weights)


def input_pipeline(
    config: Config,
    teacher_cfg: Optional[TeacherConfig] = None,
    backbone: Any = None,
) -> tuple[Optional[dict], Optional[Callable]]:
    """(stats, collate) for the teacher in ``teacher_cfg`` (default: the recipe's teacher).

    Images: stats = {"mean", "std", "input_size"}, collate None (the default one).
    Text: stats None, collate = the teacher tokenizer's collate at data.max_length.
    ``backbone`` (already built) saves building one just to read its statistics.
    """
    from subdistill.teachers import build_tokenizer, image_stats  # heavy imports, only when asked

    teacher_cfg = config.teacher if teacher_cfg is None else teacher_cfg
    if modality(config.data) == "text":
        return None, text_collate(build_tokenizer(teacher_cfg), config.data.max_length)
    if not uses_teacher_stats(teacher_cfg):
        return native_stats(config.data), None
    if backbone is None:
        backbone = _architecture_only(teacher_cfg)
    return image_stats(teacher_cfg, backbone), None


def _architecture_only(teacher_cfg: TeacherConfig) -> Any:
    """A backbone built without its weights: the statistics depend on the architecture alone.

    A checkpoint records the statistics it was trained with; loading it reads them back.
    """
    from subdistill.teachers import build_backbone

    if teacher_cfg.source == "checkpoint":
        return build_backbone(teacher_cfg)
    return build_backbone(dataclasses.replace(teacher_cfg, pretrained=False, weights=None))


def to_device(inputs: Any, device: torch.device) -> Any:
    """A batch's inputs on ``device``: an image tensor, or the tokenizer's dict of tensors."""
    if isinstance(inputs, dict):
        return {name: value.to(device) for name, value in inputs.items()}
    return inputs.to(device)
