"""CIFAR-100: 60,000 colour 32x32 images of 100 classes (fine labels), torchvision's files.

Reads <root>/cifar-100-python/{train,test} (the python pickle batches of the
official archive); when they are missing, torchvision downloads and unpacks the
archive into <root> (it checks the MD5 sums).
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import torch

from subdistill.data.base import torchvision_download
from subdistill.errors import UserError

FOLDER = "cifar-100-python"

# Per-channel pixel statistics of the 50,000 training images.
STATS = {"mean": (0.5071, 0.4865, 0.4409), "std": (0.2673, 0.2564, 0.2762), "input_size": (3, 32, 32)}


def _download(root: Path) -> None:
    from torchvision.datasets import CIFAR100

    hint = f"put the unpacked cifar-100-python/ folder (train, test, meta) in {root}"
    torchvision_download(CIFAR100, str(root), "CIFAR-100", hint)


# The only globals a CIFAR batch needs: numpy's array rebuild. Anything else in the
# file (os.system, eval, ...) is refused before it can run.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    # The official batches are pickles of byte-string keys written by Python 2.
    with open(path, "rb") as handle:
        try:
            batch = _ArraysOnly(handle, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise UserError(f"{path} is not a plain CIFAR-100 batch: {err}") from None
    if "data" not in batch or "fine_labels" not in batch:
        raise UserError(f"{path} is not a CIFAR-100 batch (needs 'data' and 'fine_labels')")
    data = np.asarray(batch["data"], dtype=np.uint8)

    # (N, 3072) -> (N, 3, 32, 32): rows hold the red plane, then green, then blue.
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    labels = torch.tensor(batch["fine_labels"], dtype=torch.int64)
    if len(images) != len(labels):
        raise UserError(f"{path}: {len(images)} images but {len(labels)} labels")
    return images, labels


def load_cifar100(root: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 3, 32, 32), fine labels int64 (N,)) for split train|test."""
    path = Path(root) / FOLDER / split
    if not path.is_file():
        _download(Path(root))
    return _load(path)
