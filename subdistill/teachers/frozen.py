"""The frozen teacher: one boundary where eval(), no gradients and inference_mode hold.

Whatever holds a ``Teacher`` may call ``.train()`` on itself; the teacher stays in eval
mode, so dropout is off and batch-norm running statistics never move.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from subdistill.config import TeacherConfig
from subdistill.teachers.backbone import Backbone
from subdistill.teachers.build import build_backbone


class Teacher(nn.Module):
    """Wraps a Backbone; returns teacher_features (B, D) and, with a head, logits (B, C)."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone
        self.backbone.requires_grad_(False)
        super().train(False)

    @property
    def feature_dim(self) -> int:
        return self.backbone.feature_dim

    @property
    def modality(self) -> str:
        return self.backbone.modality

    @property
    def has_head(self) -> bool:
        return self.backbone.head is not None

    def train(self, mode: bool = True) -> "Teacher":
        return super().train(False)

    def _frozen_call(self, method, inputs: Any) -> torch.Tensor:
        # Someone may have reached past this wrapper (backbone.train(), or apply() on
        # batch-norm layers only); put every submodule back in eval before it runs.
        if any(module.training for module in self.backbone.modules()):
            self.backbone.eval()
        with torch.inference_mode():
            outputs = method(inputs)
        # An inference tensor cannot enter autograd; a clone made outside the context can.
        return outputs.clone()

    def forward(self, inputs: Any) -> torch.Tensor:
        return self._frozen_call(self.backbone, inputs)  # (B, D)

    def logits(self, inputs: Any) -> torch.Tensor:
        return self._frozen_call(self.backbone.logits, inputs)  # (B, C)

    def extra_repr(self) -> str:
        return "frozen"


def load_teacher(cfg: TeacherConfig) -> Teacher:
    """The frozen teacher described by ``cfg``."""
    return Teacher(build_backbone(cfg))
