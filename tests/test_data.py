"""Data sources on the real files of this machine (Fashion-MNIST, WordNet) and the
synthetic ones; the hub-backed sources are in test_data_standins.py."""

from __future__ import annotations

import gzip
import random

import numpy as np
import pytest
import torch

from subdistill.config import DataConfig
from subdistill.data import (
    Cutout,
    build_dataset,
    dataset_fingerprint,
    modality,
    native_stats,
    num_classes,
)
from subdistill.data import fashion_mnist, wordnet
from subdistill.data.imagenet100 import imagenet100_classes
from subdistill.errors import UserError

VIT_STATS = {
    "input_size": (3, 224, 224),
    "interpolation": "bicubic",
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "crop_pct": 0.9,
}

needs_fmnist = pytest.mark.skipif(
    not (fashion_mnist.SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="apt-get install dataset-fashion-mnist",
)
needs_wordnet = pytest.mark.skipif(not wordnet.SYSTEM_FILE.is_file(), reason="apt-get install wordnet-base")


# ---- Fashion-MNIST ----------------------------------------------------------------


@needs_fmnist
def test_fashion_mnist_real_first_items_and_stats():
    cfg = DataConfig(source="fashion_mnist", root="/nonexistent")
    train = build_dataset(cfg, "train", train_transform=False)
    test = build_dataset(cfg, "test", train_transform=False)
    assert (len(train), len(test)) == (60_000, 10_000)

    # First training image is an ankle boot (label 9); the eval transform only normalises.
    image, label = train[0]
    assert label == 9 and image.shape == (1, 28, 28) and image.dtype == torch.float32
    raw = train.images[0].float() / 255
    torch.testing.assert_close(image, (raw - 0.2860) / 0.3530)
    assert test[0][1] == 9 and [test[i][1] for i in range(1, 4)] == [2, 1, 1]

    # The documented statistics are the training pixels' own.
    pixels = train.images.float() / 255
    assert abs(pixels.mean().item() - 0.2860) < 5e-4 and abs(pixels.std().item() - 0.3530) < 5e-4
    assert native_stats(cfg) == {"mean": (0.2860,), "std": (0.3530,), "input_size": (1, 28, 28)}
    assert num_classes(cfg) == 10 and modality(cfg) == "image"


@needs_fmnist
def test_fashion_mnist_matches_torchvision_reader(tmp_path):
    """Our numpy IDX reader gives the bytes torchvision's FashionMNIST gives."""
    from torchvision.datasets import FashionMNIST

    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, kind in [(p, k) for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]:
        name = f"{prefix}-{kind}-ubyte"
        (raw / name).write_bytes(gzip.decompress((fashion_mnist.SYSTEM_DIR / f"{name}.gz").read_bytes()))
    reference = FashionMNIST(str(tmp_path), train=False, download=False)
    images, labels = fashion_mnist.load_fashion_mnist(str(tmp_path), "test")
    assert torch.equal(images[:, 0], reference.data) and torch.equal(labels, reference.targets)


@needs_fmnist
def test_fashion_mnist_teacher_stats_make_three_channels_and_limit_works():
    cfg = DataConfig(source="fashion_mnist", limit_train=100, limit_test=7, augment=False)
    train = build_dataset(cfg, "train", train_transform=True, stats=VIT_STATS)
    test = build_dataset(cfg, "test", train_transform=False, stats=VIT_STATS)
    assert (len(train), len(test)) == (100, 7)
    image, label = train[0]
    assert image.shape == (3, 224, 224) and label == 9
    torch.testing.assert_close(image[0], image[2])  # grey repeated, same mean/std per channel
    # augment=False: the "train" transform is the deterministic one.
    assert torch.equal(train[5][0], train[5][0])


@needs_fmnist
def test_augmentation_changes_train_item_not_eval_item():
    cfg = DataConfig(source="fashion_mnist", limit_train=10, limit_test=10, cutout=8)
    train = build_dataset(cfg, "train", train_transform=True)
    evaluation = build_dataset(cfg, "train", train_transform=False)
    torch.manual_seed(0)
    draws = [train[3][0] for _ in range(4)]
    assert any(not torch.equal(draws[0], other) for other in draws[1:])
    assert all(d.shape == (1, 28, 28) for d in draws)
    assert torch.equal(evaluation[3][0], evaluation[3][0])


def test_fashion_mnist_missing_files_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "absent")
    monkeypatch.setenv("SUBDISTILL_OFFLINE", "1")
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        build_dataset(DataConfig(source="fashion_mnist", root=str(tmp_path)), "train", False)


def test_read_idx_roundtrip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + np.array([2, 3, 4], dtype=">u4").tobytes()
    (tmp_path / "x-idx3-ubyte").write_bytes(header + images.tobytes())
    assert np.array_equal(fashion_mnist.read_idx(tmp_path / "x-idx3-ubyte"), images)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(UserError):
        fashion_mnist.read_idx(tmp_path / "bad")


# ---- WordNet noun supersenses -------------------------------------------------------


@needs_wordnet
def test_wordnet_real_split_counts_and_classes():
    cfg = DataConfig(source="wordnet_nouns", root="/nonexistent")
    train = build_dataset(cfg, "train", True)
    test = build_dataset(cfg, "test", False)
    total = len(train) + len(test)
    assert total == 82_115 > 80_000
    assert 0.18 < len(test) / total < 0.22
    assert set(train.labels) == set(range(26)) and set(test.labels) == set(range(26))
    assert num_classes(cfg) == 26 and modality(cfg) == "text"

    # The first item of the hashed order: a gloss, no second text, a label in 0..25.
    (gloss, text_b), label = train[0]
    assert text_b is None and isinstance(gloss, str) and len(gloss) > 5 and 0 <= label < 26
    assert "|" not in gloss

    # entity (00001740) sits in noun.Tops (03) -> label 0.
    assert wordnet.parse_line(
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived  \n"
    ) == ("00001740", 0, "that which is perceived")
    assert wordnet.CLASSES[0] == "noun.Tops" and wordnet.CLASSES[-1] == "noun.time"


@needs_wordnet
def test_wordnet_split_independent_of_line_order(tmp_path):
    lines = wordnet.SYSTEM_FILE.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    header = [line for line in lines if line.startswith("  ")]
    body = [line for line in lines if not line.startswith("  ")]
    random.Random(0).shuffle(body)
    (tmp_path / "data.noun").write_text("".join(header + body), encoding="utf-8")

    for split in ("train", "test"):
        original = build_dataset(DataConfig(source="wordnet_nouns", root="/nonexistent", limit_test=500), split, False)
        shuffled = build_dataset(DataConfig(source="wordnet_nouns", root=str(tmp_path), limit_test=500), split, False)
        assert original.texts_a == shuffled.texts_a and original.labels == shuffled.labels

    # The limited test split is a class mix, not the first lexicographer file.
    assert len(set(shuffled.labels)) > 15


def test_data_root_expands_the_home_folder(tmp_path, monkeypatch):
    lines = wordnet.SYSTEM_FILE.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    body = [line for line in lines if not line.startswith("  ")][:3000]
    (tmp_path / "wn").mkdir()
    (tmp_path / "wn" / "data.noun").write_text("".join(body), encoding="utf-8")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(wordnet, "SYSTEM_FILE", tmp_path / "absent")  # only ~/wn can answer
    train = build_dataset(DataConfig(source="wordnet_nouns", root="~/wn"), "train", False)
    test = build_dataset(DataConfig(source="wordnet_nouns", root="~/wn"), "test", False)
    assert len(train) + len(test) == 3000


def test_wordnet_missing_file_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(wordnet, "SYSTEM_FILE", tmp_path / "absent")
    with pytest.raises(UserError, match="wordnet-base"):
        build_dataset(DataConfig(source="wordnet_nouns", root=str(tmp_path)), "train", False)


# ---- Cutout ---------------------------------------------------------------------------


def test_cutout_one_clipped_square_from_torch_rng():
    image = torch.ones(2, 32, 32)
    torch.manual_seed(1)
    first = Cutout(8)(image)
    torch.manual_seed(1)
    assert torch.equal(first, Cutout(8)(image))  # position from torch's RNG
    assert torch.equal(image, torch.ones(2, 32, 32))  # input untouched
    assert torch.equal(Cutout(0)(image), image)

    covered = torch.zeros(32, 32, dtype=torch.bool)
    areas = set()
    for _ in range(400):
        holes = Cutout(8)(image) == 0
        assert torch.equal(holes[0], holes[1])  # same hole in every channel
        rows, cols = holes[0].any(1).nonzero(), holes[0].any(0).nonzero()
        height, width = len(rows), len(cols)
        assert 1 <= height <= 8 and 1 <= width <= 8
        assert holes[0].sum() == height * width  # one solid rectangle
        assert rows.max() - rows.min() + 1 == height and cols.max() - cols.min() + 1 == width
        areas.add(height * width)
        covered |= holes[0]
    assert 64 in areas and min(areas) < 64  # full squares inside, clipped ones at edges
    assert covered[0, 0] and covered[31, 31]


# ---- synthetic sources, registry ----------------------------------------------------


def test_fake_images_deterministic_with_teacher_shape():
    cfg = DataConfig(source="fake_images", limit_train=20)
    train = build_dataset(cfg, "train", False, stats=VIT_STATS)
    again = build_dataset(cfg, "train", False, stats=VIT_STATS)
    assert len(train) == 20 and num_classes(cfg) == 10
    image, label = train[4]
    assert image.shape == (3, 224, 224) and 0 <= label < 10
    assert torch.equal(image, again[4][0]) and label == again[4][1]
    assert not torch.equal(train[0][0], build_dataset(cfg, "test", False, stats=VIT_STATS)[0][0])
    grey_stats = native_stats(DataConfig(source="fashion_mnist"))
    grey = build_dataset(DataConfig(source="fake_images"), "test", False, stats=grey_stats)
    assert grey[0][0].shape == (1, 28, 28) and len(grey) == 128


def test_fake_text_pairs_deterministic():
    cfg = DataConfig(source="fake_text", limit_test=9)
    test = build_dataset(cfg, "test", True)
    assert len(test) == 9 and test[3] == build_dataset(cfg, "test", False)[3]
    (text_a, text_b), label = test[0]
    assert isinstance(text_a, str) and isinstance(text_b, str) and 0 <= label < num_classes(cfg) == 4
    assert len(build_dataset(DataConfig(source="fake_text"), "train", True)) == 512


def test_unknown_source_and_split_are_user_errors():
    with pytest.raises(UserError, match="did you mean cifar100"):
        num_classes(DataConfig(source="cifar10O"))
    with pytest.raises(UserError, match="split"):
        build_dataset(DataConfig(source="fake_text"), "validation", False)
    with pytest.raises(UserError, match="text"):
        native_stats(DataConfig(source="mnli"))


def test_fingerprint_tracks_settings():
    cfg = DataConfig(source="fake_images", limit_train=10)
    base = dataset_fingerprint(cfg, "train", False)
    assert base == dataset_fingerprint(DataConfig(source="fake_images", limit_train=10), "train", False)
    assert base.startswith("fake_images-train-n10-")
    others = {
        dataset_fingerprint(cfg, "test", False),
        dataset_fingerprint(cfg, "train", True),
        dataset_fingerprint(cfg, "train", False, stats=VIT_STATS),
        dataset_fingerprint(DataConfig(source="fake_images", limit_train=11), "train", False),
        dataset_fingerprint(DataConfig(source="fake_images", limit_train=10, image_size=64), "train", False),
    }
    assert base not in others and len(others) == 5
    # Cutout only matters when augmenting; the native stats equal passing them explicitly.
    assert base == dataset_fingerprint(DataConfig(source="fake_images", limit_train=10, cutout=8), "train", False)
    assert base == dataset_fingerprint(cfg, "train", False, stats=native_stats(cfg))


@needs_wordnet
def test_imagenet100_class_list_is_100_wordnet_nouns():
    wnids = imagenet100_classes()
    assert len(wnids) == len(set(wnids)) == 100 and list(wnids) == sorted(wnids)
    assert wnids[0] == "n01558993" and "n02869837" in wnids  # robin first when sorted; bonnet heads CMC's file
    offsets = {line.split(" ", 1)[0] for line in wordnet.SYSTEM_FILE.read_text(errors="replace").splitlines()}
    assert all(wnid[0] == "n" and wnid[1:] in offsets for wnid in wnids)
