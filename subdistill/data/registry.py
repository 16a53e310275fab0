"""Named data sources: what each one is, and the one entry point that builds a split.

    fashion_mnist  image  10 classes   grey 28x28, IDX files (Debian or torchvision)
    cifar100       image  100 classes  colour 32x32, torchvision's python batches
    imagenet100    image  100 classes  ImageNet folder, the CMC 100-class list
    mnli           text   3 classes    premise/hypothesis pairs, HF datasets
    wordnet_nouns  text   26 classes   WordNet 3.0 noun glosses -> supersense
    fake_images    image  10 classes   synthetic, for smoke runs
    fake_text      text   4 classes    synthetic word pairs, for smoke runs

Image items are (FloatTensor (C, H, W), label); text items ((text_a, text_b or
None), label). Image tensors are normalised with the teacher's statistics when
given (a timm data config), else with the dataset's own.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from torch.utils.data import Dataset

from subdistill.config import DataConfig
from subdistill.data import cifar, fake, fashion_mnist, imagenet100, mnli, wordnet
from subdistill.data.base import ImageTensorDataset, keep_first
from subdistill.data.transforms import image_transform, target_size
from subdistill.errors import UserError

SPLITS = ("train", "test")
FINGERPRINT_VERSION = 1  # bump when a source's items change for the same settings


@dataclass(frozen=True)
class Source:
    modality: str  # image | text
    num_classes: int
    stats: Optional[dict] = None  # native statistics of an image source


SOURCES = {
    "fashion_mnist": Source("image", 10, fashion_mnist.STATS),
    "cifar100": Source("image", 100, cifar.STATS),
    "imagenet100": Source("image", 100, imagenet100.STATS),
    "mnli": Source("text", 3),
    "wordnet_nouns": Source("text", len(wordnet.CLASSES)),
    "fake_images": Source("image", fake.IMAGE_CLASSES, fake.STATS),
    "fake_text": Source("text", fake.TEXT_CLASSES),
}


def source(cfg: DataConfig) -> Source:
    if cfg.source not in SOURCES:
        near = difflib.get_close_matches(str(cfg.source), SOURCES, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        raise UserError(f"unknown data.source {cfg.source!r}: {hint}choose one of {', '.join(SOURCES)}")
    return SOURCES[cfg.source]


def num_classes(cfg: DataConfig) -> int:
    return source(cfg).num_classes


def modality(cfg: DataConfig) -> str:
    return source(cfg).modality


def native_stats(cfg: DataConfig) -> dict:
    """{"mean", "std", "input_size": (C, H, W)} of the dataset itself."""
    stats = source(cfg).stats
    if stats is None:
        raise UserError(f"data.source {cfg.source} is text: it has no image statistics")
    return {key: tuple(value) for key, value in stats.items()}


def _check_stats(stats: dict) -> dict:
    missing = {"mean", "std", "input_size"} - set(stats)
    if missing:
        raise UserError(f"image statistics lack {sorted(missing)}: give a timm data config (mean, std, input_size)")
    if len(stats["input_size"]) != 3 or len(stats["mean"]) != stats["input_size"][0]:
        raise UserError(f"image statistics disagree: mean {stats['mean']} for input_size {stats['input_size']}")
    return stats


def _limit(cfg: DataConfig, split: str) -> int:
    return cfg.limit_train if split == "train" else cfg.limit_test


def build_dataset(cfg: DataConfig, split: str, train_transform: bool, stats: Optional[dict] = None) -> Dataset:
    """One split ("train" | "test") of the configured source.

    train_transform=True augments (when cfg.augment); False gives the deterministic
    eval transform with the same size and normalisation. ``stats`` is the teacher's
    timm data config; None normalises with the dataset's own statistics.
    """
    spec = source(cfg)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: choose train or test")
    limit = _limit(cfg, split)
    root = str(Path(cfg.root).expanduser())  # data.root=~/data means the home folder, as in a shell

    if spec.modality == "text":
        if cfg.source == "mnli":
            return mnli.load_mnli(root, split, limit)
        if cfg.source == "wordnet_nouns":
            return wordnet.load_wordnet_nouns(root, split, limit)
        return fake.fake_text(split, limit)

    stats = _check_stats(stats) if stats is not None else native_stats(cfg)
    augment = bool(train_transform and cfg.augment)

    if cfg.source == "imagenet100":
        transform = image_transform(stats, 3, None, augment, cfg.image_size, cfg.cutout)
        folder = imagenet100.load_imagenet100(root, split, transform)
        folder.keep_first(keep_first(limit, len(folder)))
        return folder

    if cfg.source == "fake_images":
        # Made directly at the teacher's channels and size, so no resize is needed.
        channels, side = int(stats["input_size"][0]), target_size(stats, cfg.image_size)[0]
        transform = image_transform(stats, channels, (side, side), augment, cfg.image_size, cfg.cutout)
        count = keep_first(limit, fake.SIZES[split])
        return fake.FakeImages(count, channels, side, seed=fake.SEEDS[split], transform=transform)

    loader = fashion_mnist.load_fashion_mnist if cfg.source == "fashion_mnist" else cifar.load_cifar100
    images, labels = loader(root, split)
    count = keep_first(limit, len(images))
    _, channels, height, width = images.shape
    transform = image_transform(stats, channels, (height, width), augment, cfg.image_size, cfg.cutout)
    return ImageTensorDataset(images[:count], labels[:count], transform)


def dataset_fingerprint(
    cfg: DataConfig,
    split: str,
    train_transform: bool,
    stats: Optional[dict] = None,
) -> str:
    """A stable id of what build_dataset would return: source, split, limit, transform settings.

    Reads no data. The data folder (cfg.root) is left out on purpose, so a moved
    folder keeps its caches; ``stats`` (the teacher's normalisation) is included
    when given.
    """
    spec = source(cfg)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: choose train or test")
    limit = _limit(cfg, split)
    settings: dict = {"version": FINGERPRINT_VERSION, "source": cfg.source, "split": split, "limit": limit}
    if spec.modality == "image":
        augment = bool(train_transform and cfg.augment)
        settings.update(augment=augment, image_size=cfg.image_size, cutout=cfg.cutout if augment else 0)
        chosen = stats if stats is not None else spec.stats
        settings["stats"] = {key: list(value) if isinstance(value, (tuple, list)) else value
                             for key, value in sorted(chosen.items())}
    else:
        settings["max_length"] = cfg.max_length
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return f"{cfg.source}-{split}-n{limit}-{digest[:12]}"
