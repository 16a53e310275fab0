"""What a model costs to run: parameters, FLOPs per example, CPU latency and throughput.

FLOPs come from torch's own counter (torch.utils.flop_counter.FlopCounterMode): the
matrix products, convolutions and attention of one forward pass on one example, two
FLOPs per multiply-add; element-wise work is not counted. Times are wall-clock on the
CPU in inference mode with torch's current thread count: a few warm-up passes, then
the median of ``repeats`` timed passes, at batch 1 (latency) and batch 64 (throughput).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from subdistill.pipeline import to_device

LATENCY_BATCH = 1
THROUGHPUT_BATCH = 64


class Classifier(nn.Module):
    """A body and an optional linear head on top: the input -> logits model that is counted and timed."""

    def __init__(self, body: nn.Module, head: Optional[nn.Module] = None):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, inputs: Any) -> torch.Tensor:
        outputs = self.body(inputs)  # (B, K) or (B, D)
        return outputs if self.head is None else self.head(outputs)  # (B, C)


def count_parameters(module: nn.Module) -> int:
    """Parameters, each shared one counted once."""
    return sum(p.numel() for p in module.parameters())


@torch.inference_mode()
def count_flops(module: nn.Module, one: Any) -> int:
    """FLOPs of one forward pass on a batch of one example."""
    counter = FlopCounterMode(display=False)
    with counter:
        module(one)
    return int(counter.get_total_flops())


@torch.inference_mode()
def median_seconds(module: nn.Module, inputs: Any, repeats: int, warmup: int, warmup_s: float = 0.25) -> float:
    """Median wall-clock seconds of one pass, after at least ``warmup`` passes and ``warmup_s`` seconds.

    The first passes pay for allocations and kernel choices, and a thread pool may take a
    while to settle; the median shrugs off the odd pass another process slowed down.
    """
    deadline, done = time.perf_counter() + warmup_s, 0
    while done < warmup or time.perf_counter() < deadline:
        module(inputs)
        done += 1
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        module(inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(
    module: nn.Module,
    one: Any,
    batch: Any,
    repeats: int = 10,
    warmup: int = 2,
    threads: int = 0,
) -> dict[str, Any]:
    """Parameters, FLOPs per example, latency at batch 1 (ms) and throughput at batch 64 (examples/s), on the CPU.

    ``one`` and ``batch`` are model inputs holding 1 and 64 examples; ``threads`` > 0 times
    with that many CPU threads (torch's setting is restored afterwards), 0 with torch's own.
    """
    cpu = torch.device("cpu")
    module = module.to(cpu).eval()
    one, batch = to_device(one, cpu), to_device(batch, cpu)
    size = len(batch["input_ids"]) if isinstance(batch, dict) else len(batch)
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        return {
            "parameters": count_parameters(module),
            "flops_per_example": count_flops(module, one),
            "latency_ms": 1000 * median_seconds(module, one, repeats, warmup),
            "throughput": size / median_seconds(module, batch, repeats, warmup),
            "batch": size,
            "threads": torch.get_num_threads(),
            "repeats": repeats,
        }
    finally:
        torch.set_num_threads(before)
