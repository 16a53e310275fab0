"""The two dataset shapes every source returns, and the helpers they share.

Image items: (FloatTensor (C, H, W), int label). Text items: ((text_a, text_b or
None), int label). A source keeps its raw examples compact (uint8 tensors,
lists of strings) and transforms one item at a time.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable, Optional, Sequence

import torch
from torch.utils.data import Dataset

# Any of these set to a true value means: never try to download anything.
OFFLINE_VARIABLES = ("SUBDISTILL_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def downloads_allowed() -> bool:
    return not any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in OFFLINE_VARIABLES)


def torchvision_download(dataset_class: type, root: str, name: str, hint: str) -> None:
    """Fetch a dataset with torchvision's own downloader, or say what to do instead."""
    from subdistill.errors import UserError

    if not downloads_allowed():
        raise UserError(f"{name} not found and downloads are off: {hint}")
    try:
        dataset_class(root, train=True, download=True)
    except Exception as err:  # any network or disk failure is the user's to fix
        raise UserError(f"{name} download into {root} failed ({err}): {hint}") from None


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and Python version (unlike hash())."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def keep_first(limit: int, count: int) -> int:
    """How many examples a limit keeps: all of them for 0."""
    return count if limit <= 0 else min(limit, count)


class ImageTensorDataset(Dataset):
    """Images held as one uint8 tensor (N, C, H, W); the transform runs per item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Optional[Callable] = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform = images, labels.long(), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


class TextPairDataset(Dataset):
    """Sentence pairs (or single sentences, text_b None) with integer labels."""

    def __init__(self, texts_a: Sequence[str], texts_b: Optional[Sequence[str]], labels: Sequence[int]) -> None:
        if len(texts_a) != len(labels) or (texts_b is not None and len(texts_b) != len(labels)):
            raise ValueError("texts and labels differ in length")
        self.texts_a, self.texts_b, self.labels = list(texts_a), texts_b, [int(y) for y in labels]
        if self.texts_b is not None:
            self.texts_b = list(self.texts_b)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[tuple[str, Optional[str]], int]:
        text_b = None if self.texts_b is None else self.texts_b[index]
        return (self.texts_a[index], text_b), self.labels[index]
