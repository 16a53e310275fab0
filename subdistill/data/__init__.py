"""Data sources: named datasets with their transforms (see registry.py for the list)."""

from subdistill.data.registry import (
    SOURCES,
    build_dataset,
    dataset_fingerprint,
    modality,
    native_stats,
    num_classes,
)
from subdistill.data.text import text_collate
from subdistill.data.transforms import Cutout

__all__ = [
    "SOURCES",
    "Cutout",
    "build_dataset",
    "dataset_fingerprint",
    "modality",
    "native_stats",
    "num_classes",
    "text_collate",
]
