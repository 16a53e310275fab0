"""transformers teachers: a hub id, a local folder, or ``package:NAME`` (the ``model/``
folder shipped inside an installed Python package).

Feature rules (B sentences, T tokens):
  pooler  ``pooler_output`` (B, D); a checkpoint without pooler weights is an error
  cls     ``last_hidden_state[:, 0]`` (B, D)
  mean    attention-mask-weighted mean of ``last_hidden_state`` (B, D), the pooling
          sentence-transformers uses for models such as all-MiniLM-L6-v2
  auto    pooler
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig

from subdistill.config import TeacherConfig
from subdistill.errors import UserError
from subdistill.teachers.backbone import Backbone, check_feature
from subdistill.teachers.weights import load_strict, read_state_dict, seeded_init

log = logging.getLogger(__name__)

TEXT_FEATURES = ("auto", "pooler", "cls", "mean")
PACKAGE_PREFIX = "package:"


class HFBackbone(Backbone):
    def __init__(self, model: nn.Module, head: Optional[nn.Linear], cfg: TeacherConfig, feature: str):
        super().__init__(
            model,
            feature=feature,
            feature_dim=int(model.config.hidden_size),
            modality="text",
            head=head,
            record=cfg,
        )
        # Only the inputs this architecture takes (DistilBERT has no token_type_ids).
        accepted = inspect.signature(model.forward).parameters
        self.input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]

    def extract(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(batch, Mapping) or "input_ids" not in batch:
            raise UserError(f"text teacher {self.record.name} takes a dict with input_ids and attention_mask")
        inputs = {n: batch[n] for n in self.input_names if batch.get(n) is not None}
        outputs = self.encoder(**inputs)
        if self.feature == "pooler":
            return outputs.pooler_output  # (B, D)
        hidden = outputs.last_hidden_state  # (B, T, D)
        if self.feature == "cls":
            return hidden[:, 0]  # (B, D)

        # Padding tokens must not count in the mean.
        mask = inputs.get("attention_mask")
        mask = torch.ones(hidden.shape[:2], device=hidden.device) if mask is None else mask
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)  # (B, D)


def resolve_location(name: str) -> str:
    """A local folder path (``package:NAME`` found with importlib) or the hub id unchanged."""
    if name.startswith(PACKAGE_PREFIX):
        package = name[len(PACKAGE_PREFIX):]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"teacher.name={name}: the Python package {package!r} is not installed")
        folder = Path(list(spec.submodule_search_locations)[0]) / "model"
        if not (folder / "config.json").is_file():
            raise UserError(f"teacher.name={name}: {folder} holds no Hugging Face model (config.json)")
        return str(folder)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"teacher.name={name}: the folder has no config.json")
        return str(path.resolve())
    return name


def _load_config(location: str, overrides: dict) -> PretrainedConfig:
    try:
        config = AutoConfig.from_pretrained(location)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the Hugging Face config for {location!r}: {err}") from None

    # Overrides must name existing fields, so a typo is not silently a new attribute.
    known = set(config.to_dict())
    for key, value in overrides.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            raise UserError(f"teacher.model_kwargs.{key} is not a {type(config).__name__} field; nearest: {close}")
        setattr(config, key, value)
    return config


def _from_pretrained(location: str, config: PretrainedConfig, feature: str) -> nn.Module:
    try:
        model, info = AutoModel.from_pretrained(location, config=config, dtype=torch.float32, output_loading_info=True)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load Hugging Face model {location!r}: {err}; set teacher.pretrained=false?") from None
    missing = sorted(info["missing_keys"])
    pooler_missing = [k for k in missing if k.startswith("pooler.")]
    if pooler_missing and feature == "pooler":
        raise UserError(
            f"{location} has no pooler weights ({', '.join(pooler_missing)}), so pooler_output would be random; "
            "use teacher.feature=cls or mean"
        )
    if pooler_missing:
        model.pooler = None  # never keep (or later save) a random pooler
    others = [k for k in missing if not k.startswith("pooler.")]
    if others:
        raise UserError(f"{location} lacks weights for {', '.join(others[:8])} ({len(others)} missing)")
    return model


def _finetuned_classifier(location: str, hidden: int, num_classes: int) -> Optional[dict[str, torch.Tensor]]:
    """``classifier.*`` of a ...ForSequenceClassification folder, if it matches the head asked for."""
    # Only a local single-file folder is read here; a hub checkpoint's classifier is not picked up.
    weights = Path(location) / "model.safetensors"
    if not weights.is_file():
        return None
    with safe_open(str(weights), framework="pt") as handle:
        keys = set(handle.keys())
        if not {"classifier.weight", "classifier.bias"} <= keys:
            return None
        head = {"weight": handle.get_tensor("classifier.weight"), "bias": handle.get_tensor("classifier.bias")}
    return head if tuple(head["weight"].shape) == (num_classes, hidden) else None


def _drop_pooler(model: nn.Module, state: dict[str, torch.Tensor], feature: str, source: str) -> None:
    """A weights file without pooler keys: an error for feature=pooler, else the pooler goes."""
    if getattr(model, "pooler", None) is None or any(k.startswith("pooler.") for k in state):
        return
    if feature == "pooler":
        raise UserError(f"{source} has no pooler weights, so pooler_output would be random; use feature=cls or mean")
    model.pooler = None


def build_hf_backbone(cfg: TeacherConfig, config_dir: Optional[str] = None, pooler: bool = True) -> HFBackbone:
    """From cfg.name; a subdistill checkpoint passes its own folder as ``config_dir``
    and whether it saved a pooler."""
    check_feature(cfg.feature, TEXT_FEATURES, "a Hugging Face text model")
    feature = "pooler" if cfg.feature == "auto" else cfg.feature
    location = config_dir or resolve_location(cfg.name)
    config = _load_config(location, {} if config_dir else cfg.model_kwargs)
    from_location = cfg.pretrained and not cfg.weights and not config_dir

    # Hub or folder weights, or a seeded random init (then a local weights file over it).
    if from_location:
        model = _from_pretrained(location, config, feature)
    else:
        with seeded_init():
            try:
                model = AutoModel.from_config(config, dtype=torch.float32)
            except ValueError as err:  # inconsistent overrides, e.g. hidden_size not divisible by heads
                raise UserError(f"teacher.model_kwargs make an invalid {type(config).__name__}: {err}") from None
        if not pooler:
            model.pooler = None
        if cfg.weights:
            state = read_state_dict(cfg.weights)
            _drop_pooler(model, state, feature, f"teacher.weights {cfg.weights}")
            load_strict(model, state, f"teacher.weights {cfg.weights}")
    if feature == "pooler" and getattr(model, "pooler", None) is None:
        raise UserError(f"{cfg.name}: this model has no pooler; use teacher.feature=cls or mean")

    # A fresh head, unless the folder holds a fine-tuned classifier on pooler_output of the right size.
    head = None
    if cfg.num_classes > 0:
        with seeded_init():
            head = nn.Linear(config.hidden_size, cfg.num_classes)
        use_own = from_location and feature == "pooler"
        found = _finetuned_classifier(location, config.hidden_size, cfg.num_classes) if use_own else None
        if found is not None:
            head.load_state_dict(found)
            log.info("%s: using its fine-tuned classifier as the teacher head", cfg.name)
    model.eval()
    return HFBackbone(model, head, cfg, feature)


def load_tokenizer(location: str) -> Any:
    try:
        return AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load a tokenizer from {location!r}: {err}") from None
