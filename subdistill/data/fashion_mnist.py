"""Fashion-MNIST: 70,000 grey 28x28 images of 10 clothing classes, read from IDX files.

Where the four files are looked for, first hit wins:
  <root>/FashionMNIST/raw/ (torchvision's layout), <root>/fashion-mnist/, <root>/,
  /usr/share/datasets/fashion-mnist/ (Debian: apt-get install dataset-fashion-mnist),
and, failing all, torchvision downloads them into <root>/FashionMNIST/raw/.
Files may be gzipped or not. The whole set is read with numpy into one uint8
tensor (well under a second) and transformed per item.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from subdistill.data.base import torchvision_download
from subdistill.errors import UserError

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# Pixel statistics of the 60,000 training images (checked in tests/test_data.py).
STATS = {"mean": (0.2860,), "std": (0.3530,), "input_size": (1, 28, 28)}

PREFIX = {"train": "train", "test": "t10k"}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4")}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or plain): magic 0 0 dtype ndim, big-endian dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise UserError(f"{path} is not an IDX file")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UserError(f"{path} holds {data.size} values, its header says {shape}")
    return data.reshape(shape)


def _find(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def idx_folder(root: Path) -> Optional[Path]:
    """The first candidate folder that holds all four files, or None."""
    for folder in (root / "FashionMNIST" / "raw", root / "fashion-mnist", root, SYSTEM_DIR):
        stems = [f"{p}-{kind}" for p in PREFIX.values() for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
        if all(_find(folder, stem) is not None for stem in stems):
            return folder
    return None


def _download(root: Path) -> Path:
    """torchvision's download into <root>/FashionMNIST/raw (checks the MD5 sums)."""
    from torchvision.datasets import FashionMNIST

    hint = f"apt-get install dataset-fashion-mnist, or put the four IDX files in {root}/FashionMNIST/raw/"
    torchvision_download(FashionMNIST, str(root), "Fashion-MNIST", hint)
    return root / "FashionMNIST" / "raw"


@functools.lru_cache(maxsize=4)
def _load(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(_find(folder, f"{PREFIX[split]}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{PREFIX[split]}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"Fashion-MNIST files in {folder} disagree: images {images.shape}, labels {labels.shape}")

    # (N, 28, 28) -> (N, 1, 28, 28); copied because frombuffer's array is read-only.
    images_t = torch.from_numpy(images.copy()).unsqueeze(1)
    return images_t, torch.from_numpy(labels.astype(np.int64))


def load_fashion_mnist(root: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 1, 28, 28), labels int64 (N,)) for split train|test."""
    folder = idx_folder(Path(root)) or _download(Path(root))
    return _load(folder, split)
