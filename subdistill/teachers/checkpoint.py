"""A teacher checkpoint written by subdistill itself (``teacher.source: checkpoint``).

The folder holds
  teacher.safetensors  the Backbone's state dict, plain keys (encoder.*, head.*)
  teacher.json         the TeacherConfig that rebuilds the architecture with random
                       weights, D, C, the resolved feature rule, image statistics and
                       the SHA-256 of teacher.safetensors
  config.json, tokenizer files   for text teachers, so the folder stands alone
Loading rebuilds the architecture and loads every key strictly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional

from safetensors.torch import load_file, save_file

from subdistill.config import TeacherConfig
from subdistill.errors import UserError
from subdistill.teachers.backbone import Backbone
from subdistill.teachers.hf_source import build_hf_backbone, load_tokenizer, resolve_location
from subdistill.teachers.timm_source import build_timm_backbone
from subdistill.teachers.torchvision_source import build_torchvision_backbone
from subdistill.hashing import sha256_file
from subdistill.teachers.weights import load_strict

log = logging.getLogger(__name__)

WEIGHTS_FILE = "teacher.safetensors"
META_FILE = "teacher.json"
FORMAT = 1
IMAGE_BUILDERS = {"timm": build_timm_backbone, "torchvision": build_torchvision_backbone}


def tokenizer_location(cfg: TeacherConfig) -> Optional[str]:
    """Where a text teacher's tokenizer is read from; None for image teachers."""
    if cfg.source == "hf":
        return resolve_location(cfg.name)
    if cfg.source == "checkpoint":
        meta = read_meta(Path(cfg.name))
        if meta["modality"] != "text":
            return None
        if not meta.get("tokenizer"):
            raise UserError(f"teacher checkpoint {cfg.name} was saved without tokenizer files")
        return str(Path(cfg.name))
    return None


def _write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Write to a side file, then rename: a crash never leaves half a checkpoint under the real name."""
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def save_teacher_checkpoint(backbone: Backbone, cfg: TeacherConfig, folder: Path) -> Path:
    """Write the teacher checkpoint into ``folder`` and return the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    # Plain, unshared, contiguous CPU tensors are what safetensors stores.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in backbone.state_dict().items()}
    weights = folder / WEIGHTS_FILE
    _write_atomic(weights, lambda p: save_file(state, str(p), metadata={"format": "pt"}))

    meta: dict[str, Any] = {
        "format": FORMAT,
        "teacher": dataclasses.asdict(backbone.record),
        "feature": backbone.feature,
        "feature_dim": backbone.feature_dim,
        "num_classes": backbone.num_classes,
        "modality": backbone.modality,
        "image_stats": backbone.stats,
        "sha256": sha256_file(weights),
        "origin": dataclasses.asdict(cfg),
    }
    if backbone.modality == "text":
        backbone.encoder.config.save_pretrained(folder)
        meta["pooler"] = getattr(backbone.encoder, "pooler", None) is not None
        meta["tokenizer"] = _save_tokenizer(cfg, folder)
    _write_atomic(folder / META_FILE, lambda p: p.write_text(json.dumps(meta, indent=2, default=list) + "\n"))
    return folder


def _save_tokenizer(cfg: TeacherConfig, folder: Path) -> bool:
    try:
        location = tokenizer_location(cfg)
        tokenizer = load_tokenizer(location) if location else None
    except UserError as err:
        log.warning("teacher checkpoint %s is saved without a tokenizer: %s", folder, err)
        return False
    if tokenizer is None:
        return False
    tokenizer.save_pretrained(str(folder))
    return True


def read_meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise UserError(f"{folder} is not a teacher checkpoint (no {META_FILE}); save one with save_teacher_checkpoint")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("teacher"), dict):
        raise UserError(f"{path} is not a teacher record (expected an object with a 'teacher' entry)")
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} has format {meta.get('format')!r}; this subdistill reads format {FORMAT}")
    return meta


def _record(meta: dict[str, Any], cfg: TeacherConfig) -> TeacherConfig:
    """The recorded architecture, with a feature rule the user may still choose."""
    fields = {f.name for f in dataclasses.fields(TeacherConfig)}
    record = TeacherConfig(**{k: v for k, v in meta["teacher"].items() if k in fields})
    if cfg.num_classes not in (0, meta["num_classes"]):
        raise UserError(
            f"teacher checkpoint {cfg.name} has num_classes={meta['num_classes']}, "
            f"but teacher.num_classes={cfg.num_classes}"
        )
    return record if cfg.feature == "auto" else dataclasses.replace(record, feature=cfg.feature)


def load_checkpoint_backbone(cfg: TeacherConfig) -> Backbone:
    """Rebuild from teacher.json with random init, then load teacher.safetensors strictly."""
    folder = Path(cfg.name).expanduser()
    meta = read_meta(folder)
    record = _record(meta, cfg)

    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError(f"teacher checkpoint {folder} has no {WEIGHTS_FILE}")
    if sha256_file(weights) != meta["sha256"]:
        raise UserError(f"{weights} does not match the sha256 recorded in {META_FILE}; it was changed or cut short")

    if record.source == "hf":
        backbone = build_hf_backbone(record, config_dir=str(folder), pooler=meta.get("pooler", True))
    elif record.source in IMAGE_BUILDERS:
        backbone = IMAGE_BUILDERS[record.source](record)
    else:
        raise UserError(f"{folder / META_FILE} records an unknown teacher source {record.source!r}")
    load_strict(backbone, load_file(str(weights)), f"teacher checkpoint {weights}")

    if backbone.feature_dim != meta["feature_dim"] and record.feature == meta["feature"]:
        recorded, rebuilt = meta["feature_dim"], backbone.feature_dim
        raise UserError(f"teacher checkpoint {folder} records D={recorded}, the rebuilt model has D={rebuilt}")
    if meta.get("image_stats"):
        backbone.stats = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["image_stats"].items()}
    return backbone
