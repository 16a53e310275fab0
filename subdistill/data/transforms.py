"""Image transforms: one builder for every image source, following DESIGN.md.

Every image source hands its raw examples over as uint8 tensors (C, H, W) or PIL
images; the builder turns them into normalised float tensors of the teacher's
input size and channel count.

Train pipeline (when ``augment``): random crop (padded crop for fixed-size
datasets, random resized crop for a folder of photos), horizontal flip, colour
jitter, then normalisation and one cutout hole of ``cutout`` pixels. The eval
pipeline is deterministic: resize (and centre crop for photos), normalisation.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2

# timm writes the interpolation as a word; torchvision wants the enum.
INTERPOLATIONS = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}

# Jitter strength of the ResNet recipe; hue is left alone (grey data has none).
JITTER = 0.4


class Cutout(torch.nn.Module):
    """Zero one square hole of side ``size`` (after normalisation, so 0 is the mean).

    The centre is drawn uniformly over the image from torch's global RNG; near an
    edge the hole is clipped, as in DeVries & Taylor (2017).
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return image
        height, width = image.shape[-2:]
        cy = int(torch.randint(height, (1,)))
        cx = int(torch.randint(width, (1,)))
        top, left = max(0, cy - self.size // 2), max(0, cx - self.size // 2)
        bottom, right = min(height, top + self.size), min(width, left + self.size)
        image = image.clone()
        image[..., top:bottom, left:right] = 0
        return image

    def extra_repr(self) -> str:
        return f"size={self.size}"


class ToChannels(torch.nn.Module):
    """Match the teacher's channel count: grey -> 3 by repeating, RGB -> 1 by luminance."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = int(channels)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        have = image.shape[-3]
        if have == self.channels:
            return image
        if have == 1:
            return image.expand(*image.shape[:-3], self.channels, *image.shape[-2:]).clone()
        if self.channels == 1:
            return v2.functional.rgb_to_grayscale(image, num_output_channels=1)
        raise ValueError(f"cannot turn {have} channels into {self.channels}")

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


def target_size(stats: dict, image_size: int) -> tuple[int, int]:
    """(H, W) the teacher sees: the config's override, else the stats' input size."""
    if image_size > 0:
        return image_size, image_size
    _, height, width = stats["input_size"]
    return int(height), int(width)


def image_transform(
    stats: dict,
    native_channels: int,
    native_size: Optional[tuple[int, int]],
    train: bool,
    image_size: int = 0,
    cutout: int = 0,
) -> v2.Compose:
    """Build the transform for one split.

    stats: {"mean", "std", "input_size": (C, H, W)} plus optional timm keys
    ("interpolation", "crop_pct"). native_size: (H, W) of a fixed-size dataset,
    None for a folder of photos of any size.
    """
    mean, std = tuple(stats["mean"]), tuple(stats["std"])
    channels = int(stats["input_size"][0])
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"stats give {len(mean)} means and {len(std)} stds for {channels} input channels")
    size = target_size(stats, image_size)
    interpolation = INTERPOLATIONS.get(str(stats.get("interpolation", "bilinear")), InterpolationMode.BILINEAR)

    steps: list = [v2.ToImage()]
    steps += _geometry(size, native_size, train, interpolation, float(stats.get("crop_pct", 0.875)))
    if train:
        steps.append(v2.RandomHorizontalFlip())

        # Saturation needs colour; grey data gets brightness and contrast only.
        saturation = JITTER if native_channels == 3 else 0.0
        steps.append(v2.ColorJitter(brightness=JITTER, contrast=JITTER, saturation=saturation))
    steps += [
        ToChannels(channels),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ]
    if train and cutout > 0:
        steps.append(Cutout(cutout))
    steps.append(v2.ToPureTensor())
    return v2.Compose(steps)


def _geometry(
    size: tuple[int, int],
    native_size: Optional[tuple[int, int]],
    train: bool,
    interpolation: InterpolationMode,
    crop_pct: float,
) -> list:
    """Resize and crop steps: padded random crop for fixed-size data, resized crop for photos."""
    if native_size is None:
        if train:
            return [v2.RandomResizedCrop(size, scale=(0.25, 1.0), interpolation=interpolation, antialias=True)]

        # timm's eval recipe: resize the short side to floor(size / crop_pct), then centre crop.
        short = math.floor(min(size) / crop_pct)
        return [v2.Resize(short, interpolation=interpolation, antialias=True), v2.CenterCrop(size)]

    steps: list = []
    if tuple(native_size) != tuple(size):
        steps.append(v2.Resize(size, interpolation=interpolation, antialias=True))
    if train:
        # Pad by 1/8 of the side (4 px at 32) and crop back, as in the CIFAR ResNet recipes.
        steps.append(v2.RandomCrop(size, padding=max(1, min(size) // 8)))
    return steps
