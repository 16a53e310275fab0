"""MNLI: premise/hypothesis pairs, 3 classes (GLUE labels), through ``datasets.load_dataset``.

Splits: train -> "train", test -> "validation_matched" (GLUE's test labels are
hidden). Where the examples come from, first hit wins:
  local files <root>/{train,validation_matched}.{parquet,jsonl,json,csv,tsv} or the
  same names under <root>/mnli/ (columns premise, hypothesis, label), loaded by
  the packaged builder for their extension;
  otherwise the hub dataset nyu-mll/glue, config mnli (cached by HF datasets).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from subdistill.data.base import TextPairDataset, keep_first
from subdistill.errors import UserError

HUB_ID, HUB_CONFIG = "nyu-mll/glue", "mnli"
SPLITS = {"train": "train", "test": "validation_matched"}
LABELS = ("entailment", "neutral", "contradiction")  # GLUE's label ids 0, 1, 2
BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv"}


def local_file(root: str, split: str) -> Optional[Path]:
    """The local file for a split, if the data folder has one."""
    for folder in (Path(root), Path(root) / "mnli"):
        for suffix in BUILDERS:
            path = folder / f"{SPLITS[split]}{suffix}"
            if path.is_file():
                return path
    return None


def _has_local_files(root: str) -> bool:
    return any(local_file(root, split) is not None for split in SPLITS)


def _load_split(root: str, split: str):
    """One split as a datasets.Dataset, from local files or the hub."""
    import datasets

    name = SPLITS[split]
    path = local_file(root, split)
    if path is None and _has_local_files(root):
        raise UserError(f"MNLI files in {root} lack the {split} split: add {name}.jsonl (or .parquet, .csv, .tsv)")
    if path is not None:
        # Same load_dataset path as the hub, pointed at a file; its cache lives beside the data.
        kwargs = {"delimiter": "\t"} if path.suffix == ".tsv" else {}
        return datasets.load_dataset(
            BUILDERS[path.suffix],
            data_files={name: str(path)},
            split=name,
            cache_dir=str(path.parent / ".hf_cache"),
            **kwargs,
        )
    # datasets honours HF_DATASETS_OFFLINE itself; our own switch must stop it too.
    if os.environ.get("SUBDISTILL_OFFLINE", "") in ("1", "true"):
        raise UserError(
            f"MNLI is not in {root} and downloads are off (SUBDISTILL_OFFLINE is set); "
            f"put {name}.jsonl or .parquet with premise, hypothesis, label columns there"
        )
    try:
        return datasets.load_dataset(HUB_ID, HUB_CONFIG, split=name)
    except Exception as err:  # offline, no cache, hub down: all fixed by the user
        raise UserError(
            f"MNLI could not be loaded from the hub ({HUB_ID}/{HUB_CONFIG}: {type(err).__name__}); "
            f"put {name}.jsonl or .parquet with premise, hypothesis, label columns in {root}"
        ) from None


def _label_id(value) -> int:
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        if value not in LABELS:
            raise UserError(f"unknown MNLI label {value!r}; expected one of {LABELS} or 0..2")
        return LABELS.index(value)
    return int(value)


def load_mnli(root: str, split: str, limit: int) -> TextPairDataset:
    """MNLI pairs ((premise, hypothesis), label); rows without a gold label (-1) are dropped."""
    table = _load_split(root, split)
    missing = {"premise", "hypothesis", "label"} - set(table.column_names)
    if missing:
        raise UserError(f"MNLI {split} split lacks the columns {sorted(missing)} (has {table.column_names})")

    premises, hypotheses, labels = [], [], []
    for premise, hypothesis, label in zip(table["premise"], table["hypothesis"], table["label"]):
        label_id = _label_id(label)
        if label_id < 0:
            continue
        premises.append(premise)
        hypotheses.append(hypothesis)
        labels.append(label_id)
        if len(labels) == keep_first(limit, len(table)):
            break
    return TextPairDataset(premises, hypotheses, labels)
