"""Step counting and the learning-rate schedule: linear warmup, then cosine to zero.

A "step" is one optimizer update; with gradient accumulation it spans
``grad_accum`` micro-batches, and the last, shorter accumulation of an epoch
still makes one step (Accelerate syncs at the end of the data loader).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR

from subdistill.errors import UserError


@dataclass(frozen=True)
class Plan:
    """How long a run is, in the units the loop counts."""

    batches_per_epoch: int  # per process
    grad_accum: int
    epochs: int
    max_steps: int

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.batches_per_epoch / self.grad_accum)

    @property
    def total_steps(self) -> int:
        by_epochs = self.epochs * self.steps_per_epoch
        if self.max_steps > 0:
            return min(by_epochs, self.max_steps) if self.epochs > 0 else self.max_steps
        return by_epochs

    @property
    def epochs_needed(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, micro-batches of that epoch already consumed) after ``step`` optimizer steps."""
        epoch, steps_in = divmod(step, self.steps_per_epoch)
        return epoch, steps_in * self.grad_accum


def check_plan(plan: Plan) -> Plan:
    if plan.batches_per_epoch < 1:
        raise UserError("the training split gives no batch on each process: lower the batch size or add examples")
    if plan.grad_accum < 1:
        raise UserError(f"train.grad_accum must be at least 1, got {plan.grad_accum}")
    if plan.total_steps < 1:
        raise UserError("the run has no step: set train.epochs or train.max_steps above 0")
    return plan


class WarmupCosine:
    """LR factor at optimizer step s (0-based): (s+1)/warmup, then a cosine from 1 to 0 over the rest.

    A class, not a lambda, so LambdaLR.state_dict() saves it with the run's state.
    """

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    return LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps))
