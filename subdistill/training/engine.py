"""The training loop, shared by both stages, as named steps.

    prepare   loaders, optimizer, warmup + cosine schedule, all through Accelerate
    resume    load a saved state; the step gives back the epoch and the batches to skip
    loop      micro-batch -> loss -> backward -> (clip, step, schedule) once per accumulation
    after     at fixed intervals: check the loss is finite, log, evaluate, save; obey an interrupt
    finish    the stage writes what it made (student or teacher) beside the states

A stage is a ``Task``: it owns the model, the data and the loss; the engine owns the
rest. ``.item()`` runs only on log, save and eval steps: a non-finite loss is
remembered on the device at the step it happens and reported at the next check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Optional, Protocol

import torch
from accelerate import Accelerator
from torch import Tensor, nn
from torch.utils.data import Dataset

from subdistill.config import Config
from subdistill.errors import UserError
from subdistill.training import checkpoints
from subdistill.training.batches import make_loader
from subdistill.training.evaluation import evaluate
from subdistill.training.logging import RunLogger
from subdistill.training.runtime import Interrupts, Precision
from subdistill.training.schedule import Plan, WarmupCosine, check_plan, warmup_cosine

SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class Hyper:
    """The settings of one stage's optimisation (distill: train.*, finetune: finetune.* and train.*)."""

    epochs: int
    max_steps: int
    batch_size: int  # per process
    lr: float
    weight_decay: float
    warmup_steps: int
    optimizer: str = "adamw"
    grad_accum: int = 1
    clip_grad: float = 0.0
    stop_at: int = 0
    log_every: int = 50
    eval_every: int = 500
    save_every: int = 500
    keep_last: int = 2


class Task(Protocol):
    stage: str
    model: nn.Module
    train_set: Dataset
    test_set: Dataset
    collate: Any

    def loss(self, model: nn.Module, inputs: Any, labels: Tensor, indices: Tensor) -> tuple[Tensor, dict]: ...

    def score(self, model: nn.Module, inputs: Any, labels: Tensor, indices: Tensor) -> dict[str, Tensor]: ...

    def finish(self, accelerator: Accelerator, model: nn.Module, run_dir: Path) -> dict: ...


def build_optimizer(model: nn.Module, hyper: Hyper) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if hyper.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=hyper.lr, weight_decay=hyper.weight_decay)
    if hyper.optimizer == "sgd":
        return torch.optim.SGD(params, lr=hyper.lr, weight_decay=hyper.weight_decay, momentum=0.9)
    raise UserError(f"optimizer must be adamw or sgd, got {hyper.optimizer!r}")


@dataclass
class Meter:
    """Running sums since the last log, kept on the device."""

    loss: Optional[Tensor] = None
    parts: dict = field(default_factory=dict)
    count: int = 0
    first_bad: Optional[Tensor] = None  # first step with a non-finite loss, -1 for none

    def add(self, loss: Tensor, parts: dict, step: int) -> None:
        loss = loss.detach().float()
        self.loss = loss if self.loss is None else self.loss + loss
        for name, value in parts.items():
            self.parts[name] = self.parts.get(name, 0) + value.detach().float()
        self.count += 1
        if self.first_bad is None:
            self.first_bad = torch.full((1,), -1, dtype=torch.long, device=loss.device)
        bad = ~torch.isfinite(loss) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, torch.full_like(self.first_bad, step), self.first_bad)

    def reset(self) -> None:
        self.loss, self.parts, self.count = None, {}, 0


class Engine:
    def __init__(
        self,
        config: Config,
        task: Task,
        hyper: Hyper,
        accelerator: Accelerator,
        run_dir: Path,
        precision: Precision,
        resume_state: Optional[Path] = None,
    ):
        self.config, self.task, self.hyper, self.accelerator = config, task, hyper, accelerator
        self.run_dir, self.precision, self.resume_state = run_dir, precision, resume_state
        self.meter, self.last_state, self.last_lr = Meter(), None, hyper.lr
        self.last_eval: dict = {}

    # prepare ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        hyper, accelerator = self.hyper, self.accelerator
        train_loader = make_loader(
            self.task.train_set, self.config.data, hyper.batch_size, self.task.collate, self.config.seed, train=True
        )
        test_loader = make_loader(
            self.task.test_set, self.config.data, hyper.batch_size, self.task.collate, self.config.seed, train=False
        )
        self.train_loader, self.test_loader = accelerator.prepare(train_loader, test_loader)
        self.plan = check_plan(Plan(len(self.train_loader), hyper.grad_accum, hyper.epochs, hyper.max_steps))

        model = self.task.model
        if accelerator.num_processes > 1 and accelerator.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # batch statistics over the global batch
        optimizer = build_optimizer(model, hyper)
        scheduler = warmup_cosine(optimizer, hyper.warmup_steps, self.plan.total_steps)
        self.model, self.optimizer, self.scheduler = accelerator.prepare(model, optimizer, scheduler)
        self.samples_per_step = hyper.batch_size * accelerator.num_processes * hyper.grad_accum

    # resume ----------------------------------------------------------------------------------

    def resume(self) -> int:
        if self.resume_state is None:
            return 0
        self.accelerator.load_state(str(self.resume_state))
        record = checkpoints.read_trainer(self.resume_state)
        step = int(record["step"])

        # The schedule and learning rate come from the current config (train.py refuses a resume whose
        # settings differ from the run's, so these are the run's own values).
        inner = self.scheduler.scheduler
        inner.lr_lambdas = [WarmupCosine(self.hyper.warmup_steps, self.plan.total_steps) for _ in inner.base_lrs]
        inner.base_lrs = [self.hyper.lr for _ in inner.base_lrs]
        for group, factor in zip(self.optimizer.param_groups, inner.lr_lambdas):
            group["lr"] = self.hyper.lr * factor(inner.last_epoch)
        self.last_state = self.resume_state
        return step

    # loop ------------------------------------------------------------------------------------

    def run(self) -> dict:
        self.prepare()
        start = self.resume()
        total = self.plan.total_steps
        self.logger = RunLogger(self.accelerator, self.run_dir, total, start, self.task.stage)
        self.logger.info(
            f"{self.task.stage}: {total} steps, {self.plan.steps_per_epoch} per epoch, global batch "
            f"{self.samples_per_step} on {self.accelerator.num_processes} process(es), {self.precision.describe()}"
            + (f", resumed at step {start} from {self.resume_state}" if start else "")
        )
        self.interrupts = Interrupts()
        try:
            finished = self.loop(start, total)
            summary = self.finish(total) if finished else {}
        finally:
            self.interrupts.restore()
            self.logger.close()
        return summary

    def loop(self, step: int, total: int) -> bool:
        """Train from ``step``; True when the run reached its last step, False when it paused."""
        accelerator, hyper = self.accelerator, self.hyper
        epoch, skip = self.plan.position(step)
        self.model.train()
        while step < total:
            self.train_loader.set_epoch(epoch)
            batches = accelerator.skip_first_batches(self.train_loader, skip) if skip else self.train_loader
            skip = 0
            for inputs, labels, indices in batches:
                with accelerator.accumulate(self.model):
                    loss, parts = self.task.loss(self.model, inputs, labels, indices)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and hyper.clip_grad > 0:
                        accelerator.clip_grad_norm_(self.model.parameters(), hyper.clip_grad)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                self.meter.add(loss, parts, step + 1)
                if not accelerator.sync_gradients:
                    continue
                self.last_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
                self.scheduler.step()
                step += 1
                if not self.after_step(step, total, epoch):
                    return False
                if step >= total:
                    break
            epoch += 1
        return True

    # after -----------------------------------------------------------------------------------

    def after_step(self, step: int, total: int, epoch: int) -> bool:
        """Interval work after an optimizer step; False to pause the run here."""
        hyper, last = self.hyper, step == total
        self.logger.advance()
        interrupt = self.interrupts.agreed(self.accelerator)
        pause = hyper.stop_at == step and not last
        log_due = step % max(1, hyper.log_every) == 0 or last
        eval_due = (hyper.eval_every > 0 and step % hyper.eval_every == 0) or last
        save_due = (hyper.save_every > 0 and step % hyper.save_every == 0) or last or pause or interrupt

        if log_due or save_due or eval_due:
            self.check_finite()
        if log_due:
            self.log_train(step)
        if eval_due:
            score = partial(self.task.score, self.model)
            self.last_eval = evaluate(self.accelerator, self.model, self.test_loader, score, len(self.task.test_set))
            self.logger.eval(step, self.last_eval)
        if save_due:
            record = {
                "epoch": epoch,
                "total_steps": total,
                "stage": self.task.stage,
                "config_digest": checkpoints.run_digest(self.config),
            }
            self.last_state = checkpoints.save_state(self.accelerator, self.run_dir, step, record, hyper.keep_last)
        if interrupt:
            self.logger.info(f"interrupted (signal {interrupt}) at step {step}; state saved to {self.last_state}; "
                             f"continue with: {checkpoints.resume_command(self.config, self.run_dir)}")
            raise SystemExit(128 + interrupt)
        if pause:
            self.logger.info(f"paused at step {step} as train.stop_at asks; state in {self.last_state}; "
                             f"continue with: {checkpoints.resume_command(self.config, self.run_dir)}")
        return not pause


    def check_finite(self) -> None:
        first_bad = self.meter.first_bad
        if first_bad is None:
            return
        if self.accelerator.num_processes > 1:
            first_bad = self.accelerator.gather(first_bad)  # (P,)
        found = first_bad[first_bad >= 0]
        if found.numel():
            step, fix = int(found.min().item()), "lower train.lr or set train.clip_grad"
            if self.last_state:
                advice = f"last good state: {self.last_state}; {fix}, then resume from it"
            else:
                advice = f"no state was saved before it; {fix} and start again"
            raise UserError(f"non-finite loss at step {step}; {advice}")

    def log_train(self, step: int) -> None:
        meter = self.meter
        if meter.loss is None:
            return
        values = torch.stack([meter.loss, *meter.parts.values()]) / meter.count  # (1 + parts,)
        values = self.accelerator.reduce(values, reduction="mean").tolist()
        extra = dict(zip(meter.parts, values[1:]))
        rate = self.logger.samples_per_s(step, self.samples_per_step)
        self.logger.train(step, values[0], self.last_lr, rate, extra)
        meter.reset()

    # finish ----------------------------------------------------------------------------------

    def finish(self, total: int) -> dict:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        outputs = self.task.finish(accelerator, accelerator.unwrap_model(self.model), self.run_dir)
        summary = {
            "stage": self.task.stage,
            "run_dir": str(self.run_dir),
            "steps": total,
            "num_processes": accelerator.num_processes,
            "global_batch": self.samples_per_step,
            "precision": {"requested": self.precision.requested, "effective": self.precision.effective},
            "last_state": str(self.last_state),
            "eval": self.last_eval,
            **outputs,
        }
        if accelerator.is_main_process:
            (self.run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        accelerator.wait_for_everyone()
        return summary
