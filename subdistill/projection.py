"""The frozen Johnson-Lindenstrauss projection R (K x D) and the targets t = h R^T / sqrt(K).

R is drawn in float32 on the CPU from its own generator and only then moved, so the
same seed gives the same bits on every rank, device and run. It is a persistent
buffer: never a parameter, never seen by an optimizer.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from subdistill.errors import UserError
from subdistill.tensorfile import save_tensors


def draw_matrix(k: int, d: int, seed: int = 42) -> torch.Tensor:
    """R in R^{K x D}, entries N(0, 1), float32 on the CPU."""
    if not 1 <= k <= d:
        raise UserError(f"projection K must be in [1, D={d}], got K={k}")
    if not -(2**63) <= seed < 2**64:
        raise UserError(f"projection seed must fit in 64 bits, got {seed}")
    return torch.randn(k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def fingerprint(matrix: torch.Tensor) -> str:
    """SHA-256 of the float32 little-endian bytes of R."""
    array = matrix.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha256(array.astype("<f4").tobytes()).hexdigest()


class JLProjection(nn.Module):
    """Maps teacher_features (..., D) to targets (..., K)."""

    def __init__(self, k: int, d: int, seed: int = 42):
        super().__init__()
        self.k, self.d, self.seed = k, d, seed
        self.register_buffer("matrix", draw_matrix(k, d, seed), persistent=True)

    @property
    def sha256(self) -> str:
        return fingerprint(self.matrix)

    def forward(self, teacher_features: torch.Tensor) -> torch.Tensor:
        if teacher_features.shape[-1] != self.d:
            raise UserError(
                f"teacher_features have last dimension {teacher_features.shape[-1]}, "
                f"but the projection expects D={self.d} (K={self.k})"
            )
        # The product runs in float32 whatever the features' dtype; the caller casts back if it wants.
        matrix = self.matrix.to(teacher_features.device)
        targets = teacher_features.float() @ matrix.T / math.sqrt(self.k)  # (..., K)
        return targets

    def _apply(self, fn, recurse=True):
        # .half() or .to(bfloat16) on a model holding R may move it, never round it.
        super()._apply(fn, recurse)
        if self.matrix.dtype != torch.float32:
            self.matrix = draw_matrix(self.k, self.d, self.seed).to(self.matrix.device)
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # R is a function of (K, D, seed): a state dict holding another R is refused, not swapped in.
        key = prefix + "matrix"
        if key in state_dict and fingerprint(state_dict[key]) != self.sha256:
            raise UserError(
                f"state dict entry {key} is not the projection drawn with K={self.k}, D={self.d}, "
                f"seed={self.seed} (SHA-256 {fingerprint(state_dict[key])[:12]}... != {self.sha256[:12]}...)"
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"k={self.k}, d={self.d}, seed={self.seed}"

    def save(self, path: str | Path) -> None:
        metadata = {"seed": str(self.seed), "k": str(self.k), "d": str(self.d), "sha256": self.sha256}
        try:
            save_tensors({"matrix": self.matrix.detach().cpu().contiguous()}, str(path), metadata=metadata)
        except Exception as err:  # a missing folder, a folder in the way, a full disk
            raise UserError(f"cannot write projection file {path}: {err}") from None

    @classmethod
    def load(cls, path: str | Path) -> "JLProjection":
        """Load a saved R and check its bytes against the fingerprint in its metadata."""
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                matrix = f.get_tensor("matrix")
        except FileNotFoundError:
            raise UserError(f"no projection file at {path}") from None
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise UserError(f"cannot read projection file {path}: {err}") from None
        missing = {"seed", "k", "d", "sha256"} - set(metadata)
        if missing:
            raise UserError(f"projection file {path} lacks metadata {sorted(missing)}")
        try:
            k, d, seed = int(metadata["k"]), int(metadata["d"]), int(metadata["seed"])
        except ValueError:
            raise UserError(f"projection file {path} has non-integer k, d or seed in its metadata") from None
        if tuple(matrix.shape) != (k, d) or matrix.dtype != torch.float32:
            raise UserError(
                f"projection file {path} holds {matrix.dtype} {tuple(matrix.shape)}, metadata says float32 ({k}, {d})"
            )
        actual = fingerprint(matrix)
        if actual != metadata["sha256"]:
            raise UserError(
                f"projection file {path} is damaged: SHA-256 {actual[:12]}... != recorded {metadata['sha256'][:12]}..."
            )
        # The recorded seed must redraw the very same R, or the file lies about where R came from.
        projection = cls(k, d, seed)
        if projection.sha256 != actual:
            raise UserError(f"projection file {path}: its R is not the one drawn with seed {seed} for K={k}, D={d}")
        return projection
