"""From a TeacherConfig to a backbone, its tokenizer or image statistics, and a fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from torch import nn

from subdistill.config import TeacherConfig
from subdistill.errors import UserError
from subdistill.teachers.backbone import Backbone
from subdistill.teachers.checkpoint import WEIGHTS_FILE, load_checkpoint_backbone, read_meta, tokenizer_location
from subdistill.teachers.hf_source import PACKAGE_PREFIX, build_hf_backbone, load_tokenizer, resolve_location
from subdistill.teachers.timm_source import build_timm_backbone
from subdistill.teachers.torchvision_source import build_torchvision_backbone
from subdistill.hashing import sha256_file
from subdistill.teachers.weights import INIT_SEED

BUILDERS = {
    "timm": build_timm_backbone,
    "hf": build_hf_backbone,
    "torchvision": build_torchvision_backbone,
    "checkpoint": load_checkpoint_backbone,
}


def build_backbone(cfg: TeacherConfig) -> Backbone:
    """The trainable teacher (in eval mode) described by ``cfg``."""
    if cfg.source not in BUILDERS:
        raise UserError(f"unknown teacher.source {cfg.source!r}; choose one of {', '.join(BUILDERS)}")
    if cfg.num_classes < 0:
        raise UserError(f"teacher.num_classes must be >= 0, got {cfg.num_classes}")
    if not isinstance(cfg.model_kwargs, dict):
        raise UserError(f"teacher.model_kwargs must be a mapping, got {cfg.model_kwargs!r}")
    return BUILDERS[cfg.source](cfg)


def image_stats(cfg: TeacherConfig, backbone: nn.Module) -> Optional[dict[str, Any]]:
    """timm data-config style {"mean", "std", "input_size", ...} for image teachers, None for text."""
    backbone = getattr(backbone, "backbone", backbone)  # a frozen Teacher wraps its Backbone
    if backbone.modality != "image":
        return None
    return dict(backbone.stats)


def build_tokenizer(cfg: TeacherConfig) -> Any:
    """AutoTokenizer from the teacher's own folder, hub id or checkpoint; None for image teachers."""
    location = tokenizer_location(cfg)
    return None if location is None else load_tokenizer(location)


def _location_hash(location: str) -> Optional[str]:
    """SHA-256 over the weight files of a local HF folder; None for a hub id."""
    folder = Path(location)
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise UserError(f"{location} holds no weights (*.safetensors or *.bin)")
    return "+".join(sha256_file(f)[:16] for f in files) if len(files) > 1 else sha256_file(files[0])


def teacher_fingerprint(cfg: TeacherConfig) -> str:
    """A stable string naming the teacher's weights and feature rule; caches are keyed on it."""
    if cfg.source == "checkpoint":
        folder = Path(cfg.name).expanduser()
        meta = read_meta(folder)
        feature = meta["feature"] if cfg.feature == "auto" else cfg.feature
        return f"checkpoint:sha256={sha256_file(folder / WEIGHTS_FILE)}|feature={feature}"

    name = cfg.name
    if cfg.weights:
        weights = f"sha256={sha256_file(Path(cfg.weights).expanduser())}"
    elif not cfg.pretrained:
        weights = f"random-init:seed={INIT_SEED}:num_classes={cfg.num_classes}"
    elif cfg.source == "hf" and (digest := _location_hash(resolve_location(name))) is not None:
        weights = f"sha256={digest}"
        name = name if name.startswith(PACKAGE_PREFIX) else str(Path(name).expanduser().resolve())
    else:
        weights = "pretrained"

    # Constructor arguments change the architecture, so they are part of the identity.
    kwargs = f"|model_kwargs={json.dumps(cfg.model_kwargs, sort_keys=True)}" if cfg.model_kwargs else ""
    return f"{cfg.source}:{name}:{weights}|feature={cfg.feature}{kwargs}"
