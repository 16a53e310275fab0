"""The cache of teacher_features: extracted once per teacher, data split and transform, then reused.

    checkpoints/features/<source>-<split>-<fingerprint[:16]>/
        features.safetensors    teacher_features (N, D) float16|float32, labels (N,) int64;
                                metadata: the full fingerprint and what it was made from
        shards/                 only while extracting: one file per few batches, so an
                                interrupted extraction starts again where it stopped

The fingerprint hashes the teacher's weights and feature rule, the dataset (source,
split, limit, eval transform, normalisation) and the stored dtype. Examples keep the
dataset's order and get the eval transform (never augmentation). A cache whose
recorded fingerprint or format differs from what is asked is refused and rebuilt,
with a notice; it is never read.

Extraction takes no lock: in a multi-process launch, let the main process extract
first (accelerate's ``main_process_first``) and the others then read the cache.

    subdistill features recipe=NAME [key=value ...]    extracts both splits
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from subdistill.config import Config, TeacherConfig
from subdistill.errors import UserError
from subdistill.tensorfile import save_tensors

FORMAT = 1  # bump when the layout or the feature rule of the cache changes
FEATURES_FILE = "features.safetensors"
SHARD_DIR = "shards"
DTYPES = {"float16": torch.float16, "float32": torch.float32}


def cache_identity(config: Config, split: str, teacher_cfg: TeacherConfig) -> dict[str, Any]:
    """Everything the cached values depend on; its hash is the cache's fingerprint."""
    from subdistill.data import dataset_fingerprint, modality
    from subdistill.pipeline import uses_teacher_stats
    from subdistill.teachers import teacher_fingerprint

    if config.features.dtype not in DTYPES:
        raise UserError(f"features.dtype must be float16 or float32, got {config.features.dtype!r}")
    identity = {
        "format": FORMAT,
        "teacher": teacher_fingerprint(teacher_cfg),
        "feature": teacher_cfg.feature,
        "data": dataset_fingerprint(config.data, split, False),
        "split": split,
        "transform": "eval",
        "dtype": config.features.dtype,
    }
    # Images are normalised with the teacher's statistics or the dataset's (see pipeline.py).
    if modality(config.data) == "image":
        identity["teacher_stats"] = uses_teacher_stats(teacher_cfg)
        if identity["teacher_stats"] and teacher_cfg.source == "checkpoint":
            identity["stats"] = _checkpoint_stats(teacher_cfg)
    return identity


def _checkpoint_stats(teacher_cfg: TeacherConfig) -> Any:
    meta_file = Path(teacher_cfg.name).expanduser() / "teacher.json"
    return json.loads(meta_file.read_text()).get("image_stats") if meta_file.is_file() else None


def fingerprint_of(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def cache_dir(config: Config, split: str, fingerprint: str) -> Path:
    return Path(config.output_root) / "features" / f"{config.data.source}-{split}-{fingerprint[:16]}"


def locate(config: Config, split: str) -> tuple[TeacherConfig, dict[str, Any], Path]:
    """(the teacher to run, the cache identity, the cache folder) for a split; reads no data."""
    from subdistill.store import effective_teacher

    teacher_cfg = effective_teacher(config)
    identity = cache_identity(config, split, teacher_cfg)
    return teacher_cfg, identity, cache_dir(config, split, fingerprint_of(identity))


def load_or_extract(config: Config, split: str, *, progress: bool = True) -> tuple[Tensor, Tensor]:
    """teacher_features (N, D) float32 and labels (N,) int64 of a split, from the cache or extracted now."""
    teacher_cfg, identity, folder = locate(config, split)
    fingerprint = fingerprint_of(identity)
    cached = read_cache(folder / FEATURES_FILE, fingerprint)
    if cached is None:
        cached = extract(config, split, teacher_cfg, folder, identity, progress=progress)
    teacher_features, labels = cached
    return teacher_features.float(), labels


def read_cache(path: Path, fingerprint: str) -> tuple[Tensor, Tensor] | None:
    """The cached tensors when path holds a cache with this fingerprint; None (with a notice if stale) otherwise."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("fingerprint") != fingerprint or metadata.get("format") != str(FORMAT):
                print(
                    f"features: refusing stale cache {path} (fingerprint {metadata.get('fingerprint', '?')[:16]}, "
                    f"expected {fingerprint[:16]}); extracting again"
                )
                return None
            return f.get_tensor("teacher_features"), f.get_tensor("labels")
    except Exception as err:  # safetensors raises its own types for cut-short files
        print(f"features: cannot read cache {path} ({err}); extracting again")
        return None


def _write_atomic(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Write beside the final name, then rename: a crash never leaves a half file under the real name."""
    partial = path.with_name(path.name + ".partial")
    save_tensors({k: v.contiguous() for k, v in tensors.items()}, str(partial), metadata=metadata)
    os.replace(partial, path)


def _resume_point(shard_dir: Path, fingerprint: str) -> tuple[int, list[Path]]:
    """How many leading examples the valid shards already cover, and those shards in order."""
    shards = sorted(shard_dir.glob("*.safetensors"))
    covered, chain = 0, []
    for shard in shards:
        start, end = (int(part) for part in shard.stem.split("-"))
        with safe_open(str(shard), framework="pt") as f:
            if (f.metadata() or {}).get("fingerprint") != fingerprint:
                print(f"features: shards in {shard_dir} belong to another cache; starting over")
                shutil.rmtree(shard_dir)
                return 0, []
        if start != covered:
            break
        chain.append(shard)
        covered = end
    for stray in set(shards) - set(chain):
        stray.unlink()
    return covered, chain


def extract(
    config: Config,
    split: str,
    teacher_cfg: TeacherConfig,
    folder: Path,
    identity: dict[str, Any],
    *,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """Run the frozen teacher over a split in order, shard by shard, then assemble the cache file."""
    from subdistill.data import build_dataset
    from subdistill.pipeline import input_pipeline, to_device
    from subdistill.teachers import load_teacher

    fingerprint = fingerprint_of(identity)
    dtype = DTYPES[config.features.dtype]
    shard_dir = folder / SHARD_DIR
    shard_dir.mkdir(parents=True, exist_ok=True)
    metadata = {"fingerprint": fingerprint, "format": str(FORMAT), "identity": json.dumps(identity, default=str)}

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    teacher = load_teacher(teacher_cfg).to(device)
    stats, collate = input_pipeline(config, teacher_cfg, teacher)
    dataset = build_dataset(config.data, split, train_transform=False, stats=stats)
    start, shards = _resume_point(shard_dir, fingerprint)
    if start:
        print(f"features: resuming {split} extraction at example {start} of {len(dataset)}")

    loader = DataLoader(
        Subset(dataset, range(start, len(dataset))),
        batch_size=config.features.batch_size,
        shuffle=False,
        num_workers=config.data.num_workers,
        collate_fn=collate,
    )
    bar = tqdm(total=len(dataset), initial=start, desc=f"features {split}", unit="ex", disable=not progress)
    pending_features, pending_labels = [], []

    def flush() -> None:
        nonlocal start
        if not pending_labels:
            return
        features, labels = torch.cat(pending_features), torch.cat(pending_labels)  # (B', D), (B',)
        shard = shard_dir / f"{start:09d}-{start + len(labels):09d}.safetensors"
        _write_atomic(shard, {"teacher_features": features, "labels": labels}, metadata)
        shards.append(shard)
        start += len(labels)
        pending_features.clear()
        pending_labels.clear()

    for inputs, labels in loader:
        teacher_features = teacher(to_device(inputs, device)).to("cpu", dtype)  # (B, D)
        if not torch.isfinite(teacher_features).all():
            hint = "; store them as float32 with features.dtype=float32" if dtype == torch.float16 else ""
            raise UserError(f"teacher_features of {split} example {start} are not finite{hint}")
        pending_features.append(teacher_features)
        pending_labels.append(torch.as_tensor(labels, dtype=torch.long))
        bar.update(len(labels))
        if len(pending_labels) >= config.features.shard_batches:
            flush()
    flush()
    bar.close()
    return _assemble(folder, shards, len(dataset), metadata)


def _assemble(folder: Path, shards: list[Path], count: int, metadata: dict[str, str]) -> tuple[Tensor, Tensor]:
    """Concatenate the shards into the cache file and drop them."""
    parts = []
    for shard in shards:
        with safe_open(str(shard), framework="pt") as f:
            parts.append((f.get_tensor("teacher_features"), f.get_tensor("labels")))
    if not parts:
        raise UserError(f"the dataset split for {folder.name} is empty: nothing to extract")
    teacher_features = torch.cat([p[0] for p in parts])  # (N, D)
    labels = torch.cat([p[1] for p in parts])  # (N,)
    if len(labels) != count:
        raise RuntimeError(f"shards in {folder} cover {len(labels)} examples, the split has {count}")
    _write_atomic(folder / FEATURES_FILE, {"teacher_features": teacher_features, "labels": labels}, metadata)
    shutil.rmtree(folder / SHARD_DIR)
    return teacher_features, labels


def main(argv: list[str]) -> None:
    from subdistill.recipes import resolve

    config = resolve(argv)
    for split in ("train", "test"):
        teacher_features, labels = load_or_extract(config, split)
        folder = locate(config, split)[2]
        print(f"{split}: teacher_features {tuple(teacher_features.shape)} ({config.features.dtype}) in {folder}")
