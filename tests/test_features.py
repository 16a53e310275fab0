"""The feature cache: right values in dataset order, reuse, stale caches refused, interrupted extraction resumed."""

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from subdistill import features
from subdistill.data import build_dataset
from subdistill.recipes import resolve
from subdistill.teachers import load_teacher
from subdistill.teachers.frozen import Teacher


def make_config(tmp_path, *extra):
    # Synthetic images with a random-init ResNet-18: no real data or weights needed.
    settings = dict(arg.split("=", 1) for arg in [
        "recipe=fmnist_k32", "tiny=true", "teacher.finetune=false", "data.source=fake_images",
        "teacher.model_kwargs={}", "features.batch_size=8", f"output_root={tmp_path}", *extra,
    ])  # fmt: skip
    return resolve([f"{key}={value}" for key, value in settings.items()])


@pytest.fixture
def forward_calls(monkeypatch):
    """Counts teacher forwards; set calls["fail_after"] to interrupt an extraction."""
    calls = {"count": 0, "fail_after": None}
    original = Teacher.forward

    def counting_forward(self, inputs):
        if calls["fail_after"] is not None and calls["count"] >= calls["fail_after"]:
            raise KeyboardInterrupt("interrupted by the test")
        calls["count"] += 1
        return original(self, inputs)

    monkeypatch.setattr(Teacher, "forward", counting_forward)
    return calls


def cache_file(config, split="train"):
    return features.locate(config, split)[2] / features.FEATURES_FILE


def test_cached_features_are_the_teachers_in_dataset_order(tmp_path, forward_calls):
    config = make_config(tmp_path)
    teacher_features, labels = features.load_or_extract(config, "train", progress=False)
    assert teacher_features.shape == (64, 512) and teacher_features.dtype == torch.float32
    assert forward_calls["count"] == 8  # 64 examples in batches of 8

    dataset = build_dataset(config.data, "train", train_transform=False)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    expected = load_teacher(config.teacher)(images)
    assert torch.equal(labels, torch.tensor([dataset[i][1] for i in range(len(dataset))]))
    torch.testing.assert_close(teacher_features, expected.half().float())
    with safe_open(str(cache_file(config)), framework="pt") as f:
        assert f.get_tensor("teacher_features").dtype == torch.float16
    assert not (cache_file(config).parent / features.SHARD_DIR).exists()

    # Second call: read back, the teacher never runs.
    forward_calls["fail_after"] = forward_calls["count"]
    again, again_labels = features.load_or_extract(config, "train", progress=False)
    assert torch.equal(again, teacher_features) and torch.equal(again_labels, labels)


def test_fingerprint_follows_dtype_teacher_and_split(tmp_path):
    base = make_config(tmp_path)
    folders = {
        features.locate(base, "train")[2],
        features.locate(base, "test")[2],
        features.locate(make_config(tmp_path, "features.dtype=float32"), "train")[2],
        features.locate(make_config(tmp_path, "teacher.feature=pre_logits"), "train")[2],
        features.locate(make_config(tmp_path, "data.limit_train=32"), "train")[2],
    }
    assert len(folders) == 5
    # Settings that do not change the values keep the cache.
    assert features.locate(make_config(tmp_path, "features.batch_size=4"), "train")[2] in folders
    with pytest.raises(Exception, match="features.dtype"):
        features.locate(make_config(tmp_path, "features.dtype=bfloat16"), "train")


def test_stale_cache_is_refused_and_rebuilt(tmp_path, forward_calls, capsys):
    config = make_config(tmp_path)
    fresh, labels = features.load_or_extract(config, "train", progress=False)
    path = cache_file(config)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    # A cache made by another teacher, left under this name: other values, other fingerprint.
    save_file(
        {"teacher_features": torch.zeros(64, 512, dtype=torch.float16), "labels": labels},
        str(path),
        metadata={**metadata, "fingerprint": "0" * 64},
    )
    forward_calls["count"] = 0
    rebuilt, _ = features.load_or_extract(config, "train", progress=False)
    assert "refusing stale cache" in capsys.readouterr().out
    assert forward_calls["count"] == 8
    assert torch.equal(rebuilt, fresh)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["fingerprint"] == metadata["fingerprint"]


def test_interrupted_extraction_resumes(tmp_path, forward_calls, capsys):
    config = make_config(tmp_path / "a", "features.shard_batches=2")
    forward_calls["fail_after"] = 5  # two shards of 2 batches written, the fifth batch never finishes
    with pytest.raises(KeyboardInterrupt):
        features.load_or_extract(config, "train", progress=False)
    shards = sorted((cache_file(config).parent / features.SHARD_DIR).glob("*.safetensors"))
    assert [s.name for s in shards] == ["000000000-000000016.safetensors", "000000016-000000032.safetensors"]
    assert not cache_file(config).exists()

    forward_calls.update(count=0, fail_after=None)
    resumed, labels = features.load_or_extract(config, "train", progress=False)
    assert "resuming train extraction at example 32" in capsys.readouterr().out
    assert forward_calls["count"] == 4  # only the last 32 examples

    straight, straight_labels = features.load_or_extract(make_config(tmp_path / "b"), "train", progress=False)
    assert torch.equal(resumed, straight) and torch.equal(labels, straight_labels)


def test_features_command_extracts_both_splits(tmp_path, capsys):
    config = make_config(tmp_path)
    features.main([
        "recipe=fmnist_k32", "tiny=true", "teacher.finetune=false", "data.source=fake_images",
        "teacher.model_kwargs={}", "features.batch_size=8", f"output_root={tmp_path}",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert "train: teacher_features (64, 512)" in out and "test: teacher_features (32, 512)" in out
    assert cache_file(config, "train").is_file() and cache_file(config, "test").is_file()
