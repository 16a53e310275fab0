"""The usual distillation baselines, trained on the same student body x -> R^K as the method.

    ce       a linear head K -> C, cross-entropy on the labels; the teacher is never run
    kd       the same head, Hinton KD on the (fine-tuned) teacher's logits at train.kd_temperature
             (times T^2), plus train.ce_weight * cross-entropy when that is set
    fitnets  a linear regressor K -> D onto the full teacher_features h, mean squared error;
             the regressor only trains the body and is dropped afterwards

Same student, data, epochs and optimiser as ``objective=subspace``: only the loss and the
layer after the body differ. The body is saved as any student is (student.safetensors +
student.json), so evaluation and export treat every run alike; the head or regressor is
written beside it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import Tensor, nn

from subdistill.config import Config, TeacherConfig, TrainConfig
from subdistill.errors import UserError
from subdistill.tensorfile import save_tensors
from subdistill.training import losses

OBJECTIVES = ("subspace", "ce", "kd", "fitnets")
HEAD_FILE = "head.safetensors"  # ce, kd: the K -> C head
REGRESSOR_FILE = "regressor.safetensors"  # fitnets: the K -> D regressor


class BaselineStudent(nn.Module):
    """The student body plus the layer its loss needs; forward gives (embedding (B, K), output).

    The output is logits (B, C) for ce and kd, a prediction of h (B, D) for fitnets. Both run
    inside forward, so data parallelism sees every parameter used.
    """

    def __init__(self, body: nn.Module, extra: nn.Linear, objective: str):
        super().__init__()
        self.body, self.extra, self.objective = body, extra, objective

    def forward(self, inputs: Any) -> tuple[Tensor, Tensor]:
        embedding = self.body(inputs)  # (B, K)
        return embedding, self.extra(embedding)  # (B, C) or (B, D)


def check_objective(config: Config) -> None:
    """The weights of the extra subspace terms mean something else, or nothing, for a baseline."""
    train = config.train
    if train.objective not in OBJECTIVES:
        raise UserError(f"train.objective must be one of {', '.join(OBJECTIVES)}, got {train.objective!r}")
    if train.objective == "subspace":
        return
    if train.kd_weight > 0:
        raise UserError(
            f"train.kd_weight weighs KD through the JL probe head of objective=subspace; objective={train.objective} "
            "does not use it (objective=kd is Hinton KD itself): set train.kd_weight=0"
        )
    if train.objective in ("ce", "fitnets") and train.ce_weight > 0:
        raise UserError(f"train.ce_weight does not apply to objective={train.objective}: set train.ce_weight=0")


def input_teacher(config: Config) -> TeacherConfig:
    """The teacher whose input pipeline (normalisation, tokenizer) ce shares with the other objectives.

    ce never runs a teacher, so a missing fine-tuned checkpoint is no reason to refuse it: the
    recipe's own teacher has the same architecture, statistics and tokenizer.
    """
    from subdistill.store import effective_teacher

    try:
        return effective_teacher(config)
    except UserError:
        return dataclasses.replace(config.teacher, finetune=False)


def wrap(objective: str, body: nn.Module, k: int, num_classes: int, d: Optional[int]) -> BaselineStudent:
    """The body with a fresh head K -> C (ce, kd) or regressor K -> D (fitnets)."""
    if objective == "fitnets":
        return BaselineStudent(body, nn.Linear(k, int(d)), objective)
    return BaselineStudent(body, nn.Linear(k, num_classes), objective)


def loss(objective: str, model: nn.Module, inputs: Any, labels: Tensor, teacher_out: Optional[Tensor],
         train: TrainConfig) -> tuple[Tensor, dict]:
    """teacher_out: the teacher's logits (B, C) for kd, its teacher_features (B, D) for fitnets, None for ce."""
    _, output = model(inputs)
    if objective == "fitnets":
        return losses.feature_mse(output, teacher_out), {}
    ce = losses.probe_ce(output, labels)
    if objective == "ce":
        return ce, {}
    kd = losses.hinton_kd(output, teacher_out, train.kd_temperature)
    if train.ce_weight <= 0:
        return kd, {}
    return kd + train.ce_weight * ce, {"kd": kd, "ce": ce}


def score(objective: str, model: nn.Module, inputs: Any, labels: Tensor,
          teacher_features: Optional[Tensor]) -> dict[str, Tensor]:
    """Per-example held-out values (B,): the head's loss and accuracy, or the regressor's error and cosine."""
    _, output = model(inputs)
    output = output.float()
    if objective == "fitnets":
        return {
            "loss": (output - teacher_features.float()).pow(2).mean(dim=1),
            "cosine": losses.cosine(output, teacher_features),
        }
    return {
        "loss": F.cross_entropy(output, labels, reduction="none"),
        "accuracy": (output.argmax(dim=1) == labels).float(),
    }


def extra_file(objective: str) -> str:
    return REGRESSOR_FILE if objective == "fitnets" else HEAD_FILE


def save_extra(model: BaselineStudent, folder: Path) -> Path:
    """folder/head.safetensors or regressor.safetensors: weight (out, K) and bias (out,)."""
    path = Path(folder) / extra_file(model.objective)
    extra = model.extra.state_dict()
    state = {name: value.detach().to("cpu", torch.float32).contiguous() for name, value in extra.items()}
    save_tensors(state, str(path), metadata={"objective": model.objective, "k": str(model.extra.in_features)})
    return path


def load_head(folder: Path, k: int) -> Optional[nn.Linear]:
    """The K -> C head a ce or kd run trained (frozen, eval), or None when the run has none."""
    path = Path(folder) / HEAD_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            weight, bias = handle.get_tensor("weight"), handle.get_tensor("bias")
    except Exception as err:  # safetensors raises its own types for damaged files
        raise UserError(f"cannot read the head of {folder} ({path.name}): {err}") from None
    if weight.dim() != 2 or weight.shape[1] != k or bias.shape != weight.shape[:1]:
        raise UserError(f"{path} holds a head of shape {tuple(weight.shape)}, the student gives K={k}")
    head = nn.Linear(k, weight.shape[0])
    head.load_state_dict({"weight": weight, "bias": bias})
    return head.requires_grad_(False).eval()
