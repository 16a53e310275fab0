"""Linear probes on cached teacher_features: full width, JL-K, PCA-K and learned-K, all in one pass.

Every head of a sweep lives in one ``ProbeBank``. A batch of teacher_features
(B, D) goes through all fixed projections in one matmul, through each learned
projection, and into each head; the per-head cross-entropies are summed and one
optimizer step updates everything. The heads share no parameters, so the sum
gives each head exactly the gradient it would get if trained alone on the same
batches (AdamW and SGD both act per parameter): the sweep is N probes for the
price of one pass over the features, not N passes through the teacher.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from subdistill.config import ProbeConfig
from subdistill.errors import UserError
from subdistill.pca import PCABasis
from subdistill.projection import draw_matrix

METHODS = ("full", "jl", "pca", "learned")


@dataclass(frozen=True)
class HeadSpec:
    method: str  # full | jl | pca | learned
    k: int  # the head's input width (D for full)
    seed: int = 42  # JL seed: the projection of a jl head, the initial value of a learned one
    tag: str = ""  # distinguishes extra heads of the same method and K (the seed-spread heads)

    @property
    def name(self) -> str:
        if self.method == "full":
            return "full"
        return f"{self.method}-{self.k}" + (f"-{self.tag}" if self.tag else "")


def sweep_specs(d: int, ks: list[int], seed: int, spread_seeds: list[int] = (), pca: bool = True) -> list[HeadSpec]:
    """The heads of a validation sweep: full, then JL / PCA / learned for each K, then JL at extra seeds."""
    specs = [HeadSpec("full", d)]
    for k in ks:
        specs.append(HeadSpec("jl", k, seed))
        if pca:
            specs.append(HeadSpec("pca", k))
        specs.append(HeadSpec("learned", k, seed))
    for k in ks:
        specs += [HeadSpec("jl", k, s, tag=f"seed{s}") for s in spread_seeds if s != seed]
    return specs


def init_head(name: str, k: int, num_classes: int, init_seed: int) -> nn.Linear:
    """A (K -> C) head whose initial weights depend only on its name and the seed.

    Drawn from its own generator, so a head starts the same whichever other heads share its sweep.
    """
    digest = hashlib.sha256(f"{init_seed}:{name}".encode()).digest()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int.from_bytes(digest[:8], "big") % 2**63)
        return nn.Linear(k, num_classes)


class ProbeBank(nn.Module):
    """All probe heads of a sweep; forward maps teacher_features (B, D) to {head name: logits (B, C)}."""

    def __init__(
        self,
        d: int,
        num_classes: int,
        specs: list[HeadSpec],
        pca: PCABasis | None = None,
        init_seed: int = 0,
    ) -> None:
        super().__init__()
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate probe heads: {names}")
        self.d, self.num_classes, self.specs = d, num_classes, list(specs)

        # The fixed maps (JL and PCA) are stacked into one (sum K, D) matrix so a batch needs one matmul.
        fixed_rows, fixed_offsets = [], []
        for spec in specs:
            if spec.method not in METHODS:
                raise UserError(f"unknown probe method {spec.method!r}; expected one of {METHODS}")
            if spec.method != "full" and not 1 <= spec.k <= d:
                raise UserError(f"probe {spec.name}: K must be in [1, D={d}]")
            if spec.method == "jl":
                fixed_rows.append(draw_matrix(spec.k, d, spec.seed) / math.sqrt(spec.k))
                fixed_offsets.append(torch.zeros(spec.k))
            elif spec.method == "pca":
                if pca is None or pca.k < spec.k:
                    raise UserError(f"probe {spec.name} needs a PCA basis of at least {spec.k} components")
                basis = pca.top(spec.k)
                fixed_rows.append(basis.components.float())
                fixed_offsets.append(-(basis.components @ basis.mean).float())
        self.fixed_sizes = [s.k for s in specs if s.method in ("jl", "pca")]
        self.register_buffer("fixed", torch.cat(fixed_rows) if fixed_rows else torch.zeros(0, d))  # (sum K, D)
        self.register_buffer("fixed_offset", torch.cat(fixed_offsets) if fixed_offsets else torch.zeros(0))

        # A learned projection starts as the JL map it is compared with, then trains with its head.
        self.learned = nn.ParameterDict(
            {
                s.name: nn.Parameter(draw_matrix(s.k, d, s.seed) / math.sqrt(s.k))
                for s in specs
                if s.method == "learned"
            }
        )
        self.heads = nn.ModuleDict({s.name: init_head(s.name, s.k, num_classes, init_seed) for s in specs})

    def inputs(self, teacher_features: Tensor) -> dict[str, Tensor]:
        """{head name: the (B, K) features that head sees} for (B, D) teacher_features."""
        if teacher_features.shape[-1] != self.d:
            raise UserError(f"probe bank expects D={self.d} teacher_features, got {teacher_features.shape[-1]}")
        h = teacher_features.float()
        fixed = (h @ self.fixed.T + self.fixed_offset).split(self.fixed_sizes, dim=-1)  # each (B, K)
        fixed_iter = iter(fixed)
        out = {}
        for spec in self.specs:
            if spec.method == "full":
                out[spec.name] = h
            elif spec.method == "learned":
                out[spec.name] = h @ self.learned[spec.name].T
            else:
                out[spec.name] = next(fixed_iter)
        return out

    def forward(self, teacher_features: Tensor) -> dict[str, Tensor]:
        return {name: self.heads[name](x) for name, x in self.inputs(teacher_features).items()}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_optimizer(params, cfg: ProbeConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise UserError(f"probe.optimizer must be sgd or adamw, got {cfg.optimizer!r}")


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate from its initial value down to 0 along a half cosine over total_steps."""
    total_steps = max(1, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps)))


def train_probes(
    bank: ProbeBank,
    teacher_features: Tensor,
    labels: Tensor,
    cfg: ProbeConfig,
    *,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train every head of the bank on (N, D) features in one pass per epoch; returns the mean loss per epoch.

    The learning rate follows a cosine from cfg.lr to 0 over all steps. The summed loss is
    divided by nothing: each head's gradient is its own cross-entropy's.
    """
    device = next(bank.parameters()).device
    n = len(labels)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = max(1, cfg.epochs * steps_per_epoch)
    optimizer = build_optimizer(bank.parameters(), cfg)
    schedule = cosine_schedule(optimizer, total_steps)
    order_generator = torch.Generator().manual_seed(seed)
    history = []
    bank.train()
    bar = tqdm(total=total_steps, desc="probes", unit="step", disable=not progress, leave=False)
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=order_generator)
        epoch_loss = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            index = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            h = teacher_features[index].to(device, torch.float32)  # (B, D)
            y = labels[index].to(device)
            losses = {name: F.cross_entropy(logits, y) for name, logits in bank(h).items()}
            loss = torch.stack(list(losses.values())).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            epoch_loss += loss.detach() / len(losses)
            bar.update(1)
            if step == steps_per_epoch - 1 or step % 50 == 0:
                _check_finite(losses, epoch * steps_per_epoch + step)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item() / len(losses):.4f}")
        history.append(epoch_loss.item() / steps_per_epoch)
    bar.close()
    return history


def _check_finite(losses: dict[str, Tensor], step: int) -> None:
    for name, value in losses.items():
        if not torch.isfinite(value):
            raise UserError(f"probe {name}: non-finite loss at step {step}; lower probe.lr")


@torch.no_grad()
def evaluate_probes(bank: ProbeBank, teacher_features: Tensor, labels: Tensor, batch_size: int = 1024) -> dict:
    """{head name: {"accuracy": fraction correct, "loss": mean cross-entropy in nats}} on (N, D) features."""
    device = next(bank.parameters()).device
    bank.eval()
    correct = {s.name: 0 for s in bank.specs}
    loss_sum = {s.name: 0.0 for s in bank.specs}
    for start in range(0, len(labels), batch_size):
        h = teacher_features[start : start + batch_size].to(device, torch.float32)  # (B, D)
        y = labels[start : start + batch_size].to(device)
        for name, logits in bank(h).items():
            correct[name] += int((logits.argmax(-1) == y).sum())
            loss_sum[name] += float(F.cross_entropy(logits, y, reduction="sum"))
    n = max(1, len(labels))
    return {name: {"accuracy": correct[name] / n, "loss": loss_sum[name] / n} for name in correct}
