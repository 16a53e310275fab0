"""Exact PCA of teacher_features: the data-dependent baseline the JL projection is judged against.

The covariance (D x D) is accumulated in float64 over chunks, so N may be large
while memory stays O(D^2), and decomposed with a symmetric eigensolver. Each
component's sign is fixed (its entry of largest magnitude is positive), so the
same features give the same basis bit for bit on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from subdistill.errors import UserError


@dataclass(frozen=True)
class PCABasis:
    mean: Tensor  # (D,) float64
    components: Tensor  # (K, D) float64, orthonormal rows, largest variance first
    explained_variance: Tensor  # (K,) float64, unbiased (divided by N - 1) like scikit-learn

    @property
    def k(self) -> int:
        return self.components.shape[0]

    def top(self, k: int) -> "PCABasis":
        """The first k components; the subspaces of a sweep are nested."""
        if not 1 <= k <= self.k:
            raise UserError(f"PCA basis holds {self.k} components, asked for {k}")
        return PCABasis(self.mean, self.components[:k], self.explained_variance[:k])

    def project(self, teacher_features: Tensor) -> Tensor:
        """(..., D) -> (..., K) coordinates in the basis, float32."""
        mean = self.mean.to(teacher_features.device, torch.float32)
        components = self.components.to(teacher_features.device, torch.float32)
        return (teacher_features.float() - mean) @ components.T


def covariance(teacher_features: Tensor, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D), both float64, from (N, D) features of any dtype."""
    n, d = teacher_features.shape
    if n < 2:
        raise UserError(f"PCA needs at least 2 examples, got {n}")

    # Two passes (mean, then centred products): one pass of raw sums loses digits on large means.
    total = torch.zeros(d, dtype=torch.float64)
    for start in range(0, n, chunk):
        total += teacher_features[start : start + chunk].to(torch.float64).sum(0)
    mean = total / n
    scatter = torch.zeros(d, d, dtype=torch.float64)
    for start in range(0, n, chunk):
        centred = teacher_features[start : start + chunk].to(torch.float64) - mean  # (B, D)
        scatter += centred.T @ centred
    return mean, scatter / (n - 1)


def fix_signs(components: Tensor) -> Tensor:
    """Flip each row so that its entry of largest magnitude is positive (first such entry on ties)."""
    index = components.abs().argmax(dim=1)  # (K,)
    signs = torch.sign(components[torch.arange(components.shape[0]), index])
    signs[signs == 0] = 1.0
    return components * signs[:, None]


def fit_pca(teacher_features: Tensor, k: int) -> PCABasis:
    """Top-k principal components of (N, D) teacher_features."""
    d = teacher_features.shape[1]
    if not 1 <= k <= d:
        raise UserError(f"PCA K must be in [1, D={d}], got K={k}")
    mean, cov = covariance(teacher_features.cpu())

    # eigh returns ascending eigenvalues of a symmetric matrix; take the k largest.
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    order = torch.argsort(eigenvalues, descending=True, stable=True)[:k]
    components = fix_signs(eigenvectors[:, order].T.contiguous())  # (K, D)
    return PCABasis(mean, components, eigenvalues[order].clamp_min(0.0))
