"""Where distillation targets t = R h / sqrt(K) come from.

Online: the frozen teacher runs on every batch (needed with augmentation, where no
two epochs see the same input). Cached: teacher_features of each split come from
the feature cache (dataset order, eval transform) and are projected once; a batch
looks its targets up by example index, and the teacher is never loaded.

The baselines reuse both sources: fitnets regresses onto the teacher_features h
themselves (no projection), kd needs the teacher's logits (online only), and ce
needs no teacher at all (mode "none").
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from accelerate import Accelerator
from torch import Tensor

from subdistill.config import Config
from subdistill.errors import UserError
from subdistill.projection import JLProjection

MODES = ("auto", "online", "cached")


def choose_mode(config: Config) -> str:
    """auto: cached when the training inputs are the same every epoch, else online; none for objective=ce."""
    mode = config.train.targets
    if mode not in MODES:
        raise UserError(f"train.targets must be one of {', '.join(MODES)}, got {mode!r}")
    if config.train.objective == "ce":
        return "none"  # labels only: the teacher is never run
    wants_logits = config.train.kd_weight > 0 or config.train.objective == "kd"
    if mode == "cached" and wants_logits:
        # Cached teacher_features carry no logits; Hinton KD needs the teacher's head at every batch.
        what = "train.objective=kd" if config.train.objective == "kd" else "train.kd_weight > 0"
        raise UserError(f"{what} needs the teacher's logits: use train.targets=online (or auto)")
    if mode == "auto":
        return "online" if config.data.augment or wants_logits else "cached"
    return mode


class OnlineTargets:
    """The frozen teacher (never wrapped for data parallelism) plus the projection, on one device.

    Without a projection (fitnets) the targets are the teacher_features h (B, D) themselves.
    """

    def __init__(self, teacher: Any, projection: Optional[JLProjection], accelerator: Accelerator):
        self.teacher = teacher.to(accelerator.device)
        self.projection = projection.to(accelerator.device) if projection is not None else _features
        self.accelerator = accelerator

    def features(self, inputs: Any) -> Tensor:
        with self.accelerator.autocast():
            return self.teacher(inputs)  # (B, D), maybe in the autocast dtype

    def __call__(self, inputs: Any, indices: Tensor, split: str) -> Tensor:
        return self.projection(self.features(inputs))  # (B, K) float32, or (B, D) without a projection

    def with_logits(self, inputs: Any) -> tuple[Tensor, Tensor]:
        """(targets (B, K), teacher logits (B, C)) from one teacher pass."""
        teacher_features = self.features(inputs)  # (B, D)
        with torch.inference_mode():
            logits = self.teacher.backbone.head(teacher_features.float())  # (B, C)
        return self.projection(teacher_features), logits.clone()


def read_cached_features(config: Config, accelerator: Accelerator) -> dict[str, tuple[Tensor, Tensor]]:
    """{split: (teacher_features (N, D), labels (N,))} from the feature cache, extracted first if missing."""
    from subdistill.features import load_or_extract

    cached = {}
    for split in ("train", "test"):
        # The main process extracts a missing cache; the others then read what it wrote.
        with accelerator.main_process_first():
            cached[split] = load_or_extract(config, split, progress=accelerator.is_main_process)
    return cached


class CachedTargets:
    """Targets of each split projected once, held on the device: (N, K) float32 per split."""

    def __init__(self, tables: dict[str, Tensor], labels: dict[str, Tensor]):
        self.tables, self.labels = tables, labels

    @classmethod
    def project(
        cls,
        cached: dict[str, tuple[Tensor, Tensor]],
        projection: Optional[JLProjection],
        device: torch.device,
    ) -> "CachedTargets":
        """Project each split once; without a projection (fitnets) keep the teacher_features (N, D)."""
        project = projection if projection is not None else _features
        tables = {split: project(features).to(device) for split, (features, _) in cached.items()}  # (N, K)
        labels = {split: split_labels.to(device) for split, (_, split_labels) in cached.items()}  # (N,)
        return cls(tables, labels)

    def check(self, split: str, size: int) -> None:
        have = len(self.tables[split])
        if have != size:
            raise UserError(f"the feature cache holds {have} {split} examples, the dataset {size}; check data.limit_*")

    def __call__(self, inputs: Any, indices: Tensor, split: str) -> Tensor:
        return self.tables[split][indices.to(self.tables[split].device)]  # (B, K)

    def check_labels(self, split: str, indices: Tensor, labels: Tensor) -> Optional[str]:
        """A mismatch means the cache and the dataset disagree on example order."""
        expected = self.labels[split][indices.to(self.labels[split].device)]
        return None if torch.equal(expected, labels.to(expected.device)) else f"{split} labels differ from the cache"


def _features(teacher_features: Tensor) -> Tensor:
    """The stand-in for a projection when the targets are h itself: float32, like projected targets."""
    return teacher_features.float()
