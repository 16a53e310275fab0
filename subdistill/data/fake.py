"""Synthetic sources for smoke runs of recipes whose real data is not on the machine.

Both are deterministic (item i of a split is the same in every process) and
carry a learnable signal, so a few steps of training already move the loss:
``fake_images`` adds a per-class low-frequency colour pattern to noise,
``fake_text`` draws most words from a per-class topic list.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.utils.data import Dataset

from subdistill.data.base import TextPairDataset, keep_first

SIZES = {"train": 512, "test": 128}  # examples per split before any limit
SEEDS = {"train": 1, "test": 2}  # different examples in each split
IMAGE_CLASSES, TEXT_CLASSES = 10, 4
IMAGE_SIZE = 32  # native side when neither the config nor the teacher asks for another
STATS = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "input_size": (3, IMAGE_SIZE, IMAGE_SIZE)}

# A fixed vocabulary: 8 topic words per class, then words shared by all classes.
TOPICS = (
    ("river", "boat", "fish", "shore", "wave", "harbor", "sail", "tide"),
    ("engine", "wheel", "road", "truck", "fuel", "garage", "brake", "driver"),
    ("flour", "oven", "bread", "sugar", "butter", "bake", "dough", "crust"),
    ("planet", "orbit", "star", "comet", "moon", "telescope", "galaxy", "rocket"),
)  # fmt: skip
FILLERS = ("the", "a", "near", "with", "old", "new", "small", "large", "and", "over", "under", "every")


class FakeImages(Dataset):
    """Random uint8 images (C, H, W): class pattern + noise, made on demand from a seeded generator."""

    def __init__(
        self,
        count: int,
        channels: int = 3,
        size: int = IMAGE_SIZE,
        classes: int = IMAGE_CLASSES,
        seed: int = 0,
        transform: Optional[Callable] = None,
    ) -> None:
        self.count, self.channels, self.size, self.classes = count, channels, size, classes
        self.seed, self.transform = seed, transform

        # One 4x4 pattern per class, upsampled to the image size: (classes, C, H, W).
        patterns = torch.randn(classes, channels, 4, 4, generator=torch.Generator().manual_seed(0))
        self.patterns = torch.nn.functional.interpolate(patterns, size=(size, size), mode="bilinear")

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        label = int(torch.randint(self.classes, (1,), generator=generator))
        noise = torch.randn(self.channels, self.size, self.size, generator=generator)
        image = (128 + 40 * self.patterns[label] + 30 * noise).clamp(0, 255).to(torch.uint8)
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def _sentence(generator: torch.Generator, label: int) -> str:
    length = int(torch.randint(4, 11, (1,), generator=generator))
    words = []
    for _ in range(length):
        if float(torch.rand(1, generator=generator)) < 0.5:
            topic = TOPICS[label]
            words.append(topic[int(torch.randint(len(topic), (1,), generator=generator))])
        else:
            words.append(FILLERS[int(torch.randint(len(FILLERS), (1,), generator=generator))])
    return " ".join(words)


def fake_text(split: str, limit: int) -> TextPairDataset:
    """Word pairs ((text_a, text_b), label) over a fixed vocabulary of 44 words."""
    count = keep_first(limit, SIZES[split])
    texts_a, texts_b, labels = [], [], []
    for index in range(count):
        generator = torch.Generator().manual_seed(SEEDS[split] * 1_000_003 + index)
        label = int(torch.randint(TEXT_CLASSES, (1,), generator=generator))
        texts_a.append(_sentence(generator, label))
        texts_b.append(_sentence(generator, label))
        labels.append(label)
    return TextPairDataset(texts_a, texts_b, labels)
