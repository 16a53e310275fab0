"""The trainable teacher: a library model (``encoder``), a feature rule and an optional head.

Each source (timm, torchvision, transformers) subclasses ``Backbone`` and only says how
its encoder turns inputs into teacher_features (B, D). The library's own classifier is
taken out of the encoder and kept as ``head`` (D -> C), so features never depend on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import torch
from torch import nn

from subdistill.config import TeacherConfig
from subdistill.errors import UserError

FEATURES = ("auto", "cls", "avgpool", "pooler", "mean", "pre_logits")


def check_feature(feature: str, allowed: tuple[str, ...], where: str) -> None:
    if feature not in FEATURES:
        raise UserError(f"unknown teacher.feature {feature!r}; choose one of {', '.join(FEATURES)}")
    if feature not in allowed:
        raise UserError(f"teacher.feature={feature} does not apply to {where}; choose one of {', '.join(allowed)}")


class Backbone(nn.Module):
    """Maps inputs to teacher_features (B, D); ``logits`` adds the head (B, C)."""

    def __init__(
        self,
        encoder: nn.Module,
        *,
        feature: str,
        feature_dim: int,
        modality: str,
        head: Optional[nn.Linear],
        record: TeacherConfig,
        stats: Optional[dict[str, Any]] = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.feature = feature  # the resolved rule, never "auto"
        self.feature_dim = feature_dim  # D
        self.modality = modality  # "image" | "text"
        # The config that rebuilds this architecture with random weights (what a checkpoint records).
        self.record = dataclasses.replace(record, pretrained=False, weights=None, feature=feature, finetune=False)
        self.stats = stats  # image normalisation, timm data-config style; None for text
        self.eval()  # built for inference; a fine-tuning loop calls .train() itself

    @property
    def num_classes(self) -> int:
        return 0 if self.head is None else self.head.out_features

    def forward(self, inputs: Any) -> torch.Tensor:
        teacher_features = self.extract(inputs)  # (B, D)
        if teacher_features.dim() != 2 or teacher_features.shape[1] != self.feature_dim:
            shape = tuple(teacher_features.shape)
            raise RuntimeError(f"{self.record.name} gave features of shape {shape}, expected (B, {self.feature_dim})")
        return teacher_features

    def extract(self, inputs: Any) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, inputs: Any) -> torch.Tensor:
        if self.head is None:
            raise UserError(f"teacher {self.record.name} has no classification head (teacher.num_classes=0)")
        return self.head(self.forward(inputs))  # (B, C)

    def extra_repr(self) -> str:
        return f"source={self.record.source}, name={self.record.name}, feature={self.feature}, D={self.feature_dim}"


def check_image_batch(images: Any, in_chans: Optional[int], name: str) -> torch.Tensor:
    """The boundary check for image teachers: a (B, C, H, W) tensor with the right C (when known)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"image teacher {name} takes a (B, C, H, W) tensor, got {shape}")
    if in_chans is not None and images.shape[1] != in_chans:
        raise UserError(
            f"image teacher {name} expects {in_chans} input channels, the batch has {images.shape[1]} "
            f"(set teacher.model_kwargs.in_chans or convert the images)"
        )
    return images


def first_conv_channels(model: nn.Module, first_conv: Optional[str] = None) -> Optional[int]:
    """Input channels of the stem (by name when the library records it, else the first Conv2d)."""
    if first_conv:
        try:
            return int(model.get_submodule(first_conv).in_channels)
        except AttributeError:  # renamed or not a convolution: fall back to the search
            pass
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return None
