"""Evaluation on the held-out split, each example counted exactly once across processes.

A task scores a batch as per-example values (B,); ``gather_for_metrics`` collects
them from every process and drops the examples Accelerate repeated to even out
the last batch. The gathered example indices must then be exactly 0..N-1, which
is checked rather than assumed.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from accelerate import Accelerator
from torch import Tensor, nn
from torch.utils.data import DataLoader

# batch (inputs, labels, indices) -> {metric name: per-example values (B,)}
Scorer = Callable[[Any, Tensor, Tensor], dict[str, Tensor]]


@torch.no_grad()
def evaluate(accelerator: Accelerator, model: nn.Module, loader: DataLoader, score: Scorer, size: int) -> dict:
    """Means of the per-example values over the split, plus ``examples`` (the count)."""
    was_training = model.training
    model.eval()
    sums: dict[str, Tensor] = {}
    seen = []
    for inputs, labels, indices in loader:
        values = score(inputs, labels, indices)
        gathered = accelerator.gather_for_metrics({**values, "index": indices})
        seen.append(gathered.pop("index").cpu())
        for name, value in gathered.items():
            sums[name] = sums.get(name, 0) + value.double().sum()
    model.train(was_training)

    indices = torch.cat(seen) if seen else torch.zeros(0, dtype=torch.long)
    if not torch.equal(indices.sort().values, torch.arange(size)):
        raise RuntimeError(f"evaluation saw {len(indices)} examples ({indices.unique().numel()} distinct) of {size}")
    metrics = {name: float(total) / size for name, total in sums.items()}
    metrics["examples"] = int(len(indices))
    return metrics
