"""How well a projection keeps the teacher's geometry, and how much the JL result hangs on the seed.

Johnson-Lindenstrauss promises that t = R h / sqrt(K) keeps pairwise distances
up to a factor near 1; on real features we measure it: the ratio
||t_i - t_j|| / ||h_i - h_j|| over all pairs of a sample.
"""

from __future__ import annotations

import statistics

import numpy as np
import torch
from torch import Tensor

from subdistill.projection import JLProjection


def sample_rows(n: int, size: int, seed: int = 0) -> Tensor:
    """Indices of a fixed random sample of min(size, n) rows, sorted."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[: min(size, n)].sort().values


def pairwise_ratios(before: Tensor, after: Tensor) -> Tensor:
    """Distance ratios after/before for all pairs i < j of rows; pairs at distance 0 before are left out."""
    if len(before) != len(after):
        raise ValueError(f"{len(before)} rows before but {len(after)} after")
    # The direct difference form: the matmul shortcut loses digits for close pairs.
    exact = "donot_use_mm_for_euclid_dist"
    distances_before = torch.cdist(before.double(), before.double(), compute_mode=exact)  # (N, N)
    distances_after = torch.cdist(after.double(), after.double(), compute_mode=exact)  # (N, N)
    upper = torch.triu_indices(len(before), len(before), offset=1)
    d0, d1 = distances_before[upper[0], upper[1]], distances_after[upper[0], upper[1]]
    keep = d0 > 0
    return d1[keep] / d0[keep]


def distance_ratios(teacher_features: Tensor, projection: JLProjection, sample: int = 1000, seed: int = 0) -> dict:
    """Mean, 1st and 99th percentile (and min/max) of the JL distance ratios on a sample of (N, D) features."""
    rows = teacher_features[sample_rows(len(teacher_features), sample, seed)].float()  # (S, D)
    ratios = pairwise_ratios(rows, projection(rows))
    if ratios.numel() == 0:
        return {"pairs": 0, "mean": float("nan"), "p1": float("nan"), "p99": float("nan")}
    # numpy's percentile has no input-size limit (torch.quantile stops at 2^24 elements).
    quantiles = np.percentile(ratios.numpy(), [1, 99])
    return {
        "pairs": int(ratios.numel()),
        "mean": float(ratios.mean()),
        "p1": float(quantiles[0]),
        "p99": float(quantiles[1]),
        "min": float(ratios.min()),
        "max": float(ratios.max()),
    }


def seed_spread(accuracy_by_seed: dict[int, float]) -> dict:
    """Mean, standard deviation (n-1), min, max and range of accuracies over projection seeds."""
    values = list(accuracy_by_seed.values())
    return {
        "seeds": sorted(accuracy_by_seed),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "range": max(values) - min(values),
    }
