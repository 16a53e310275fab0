"""The distillation losses, all computed in float32 whatever the autocast dtype.

  subspace_loss   mean over the batch of ||s(x) - t||^2 (sum over K): the method's loss
  probe_ce        cross-entropy of the labels through the teacher's JL probe head on s(x)
  hinton_kd       KL(softmax(teacher / T) || softmax(student / T)) * T^2 (Hinton et al., 2015)
  feature_mse     FitNets: mean squared error of a regressed (B, D) prediction to teacher_features
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def subspace_loss(student_out: Tensor, targets: Tensor) -> Tensor:
    """student_out, targets (B, K) -> scalar."""
    if student_out.shape != targets.shape:
        raise RuntimeError(f"student gives {tuple(student_out.shape)}, targets are {tuple(targets.shape)}")
    return (student_out.float() - targets.float()).pow(2).sum(dim=1).mean()


def probe_ce(probe_logits: Tensor, labels: Tensor) -> Tensor:
    """probe_logits (B, C), labels (B,) -> scalar."""
    return F.cross_entropy(probe_logits.float(), labels)


def hinton_kd(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """(B, C) each -> scalar; the T^2 factor keeps gradient sizes comparable across temperatures."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature**2


def feature_mse(prediction: Tensor, teacher_features: Tensor) -> Tensor:
    """(B, D) each -> scalar: the mean over batch and D, as torch's MSELoss takes it."""
    if prediction.shape != teacher_features.shape:
        shapes = f"{tuple(prediction.shape)}, teacher_features are {tuple(teacher_features.shape)}"
        raise RuntimeError(f"regressor gives {shapes}")
    return F.mse_loss(prediction.float(), teacher_features.float())


def cosine(student_out: Tensor, targets: Tensor) -> Tensor:
    """Per-example cosine similarity (B,)."""
    return F.cosine_similarity(student_out.float(), targets.float(), dim=1, eps=1e-8)


def squared_error(student_out: Tensor, targets: Tensor) -> Tensor:
    """Per-example ||s - t||^2 (B,): summed over the batch it gives subspace_loss * B."""
    return (student_out.float() - targets.float()).pow(2).sum(dim=1)


def is_finite(value: Tensor) -> Tensor:
    """A 0-dim bool tensor; kept on the device so checking it needs no sync."""
    return torch.isfinite(value).all()
