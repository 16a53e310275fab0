"""timm teachers: hub weights by name, a local weights file, or a seeded random init.

Feature rules (shapes per example):
  cls         final-norm [CLS] token of ``forward_features`` (D = embed_dim); for a
              ViT with token pooling this is timm's ``forward_head(x, pre_logits=True)``
  pre_logits  what the model returns when built with ``num_classes=0`` (CNN: global pool)
  avgpool     mean of ``forward_features`` over H, W (CNN) or over the patch tokens (ViT)
  auto        cls for ViT-like models with token pooling, pre_logits otherwise
"""

from __future__ import annotations

import difflib
from typing import Any, Optional

import timm
import torch
from timm.data import resolve_model_data_config
from torch import nn

from subdistill.config import TeacherConfig
from subdistill.errors import UserError
from subdistill.teachers.backbone import Backbone, check_feature, check_image_batch, first_conv_channels
from subdistill.teachers.weights import drop_prefixes, load_strict, read_state_dict, replace_module, seeded_init

IMAGE_FEATURES = ("auto", "cls", "avgpool", "pre_logits")


class TimmBackbone(Backbone):
    def __init__(self, model: nn.Module, head: Optional[nn.Linear], cfg: TeacherConfig, feature: str, stats: dict):
        super().__init__(
            model,
            feature=feature,
            feature_dim=_feature_dim(model, feature),
            modality="image",
            head=head,
            record=cfg,
            stats=stats,
        )
        self.in_chans = first_conv_channels(model, model.pretrained_cfg.get("first_conv"))

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        images = check_image_batch(images, self.in_chans, self.record.name)
        if self.feature == "pre_logits":
            return self.encoder(images)  # the classifier is an Identity: (B, D)
        tokens_or_map = self.encoder.forward_features(images)  # (B, T, D) or (B, D, H, W)
        if self.feature == "cls":
            return tokens_or_map[:, 0]  # (B, D)
        if tokens_or_map.dim() == 4:
            return tokens_or_map.mean(dim=(2, 3))  # (B, D)
        prefix = getattr(self.encoder, "num_prefix_tokens", 0)
        return tokens_or_map[:, prefix:].mean(dim=1)  # (B, D)


def _is_token_model(model: nn.Module) -> bool:
    return getattr(model, "cls_token", None) is not None


def _resolve_feature(model: nn.Module, feature: str, name: str) -> str:
    check_feature(feature, IMAGE_FEATURES, f"the timm image model {name}")
    if feature == "auto":
        token_pooled = _is_token_model(model) and getattr(model, "global_pool", None) == "token"
        return "cls" if token_pooled else "pre_logits"
    if feature == "cls" and not _is_token_model(model):
        raise UserError(f"teacher.feature=cls needs a model with a [CLS] token; {name} has none (use avgpool)")
    return feature


def _feature_dim(model: nn.Module, feature: str) -> int:
    if feature == "pre_logits":
        return int(getattr(model, "head_hidden_size", None) or model.num_features)
    return int(model.num_features)


def _check_name(name: str) -> None:
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see timm.list_models())"
    raise UserError(f"unknown timm model {name!r}{hint}")


def _create(cfg: TeacherConfig, hub: bool) -> nn.Module:
    """The timm model with its own classifier of cfg.num_classes outputs."""
    try:
        with seeded_init():
            return timm.create_model(cfg.name, pretrained=hub, num_classes=cfg.num_classes, **cfg.model_kwargs)
    except TypeError as err:
        raise UserError(f"timm model {cfg.name} rejects teacher.model_kwargs {cfg.model_kwargs}: {err}") from None
    except OSError as err:  # no network, no cached weights, or no such hub file
        raise UserError(
            f"cannot fetch pretrained weights for timm model {cfg.name} ({err}); "
            "set teacher.pretrained=false or teacher.weights=FILE"
        ) from None


def _classifier_names(model: nn.Module) -> tuple[str, ...]:
    names = model.pretrained_cfg.get("classifier", ())
    return (names,) if isinstance(names, str) else tuple(names)


def _data_stats(model: nn.Module, cfg: TeacherConfig) -> dict[str, Any]:
    """timm's data config, corrected for the channel count and image size actually built."""
    stats = dict(resolve_model_data_config(model))
    in_chans = first_conv_channels(model, model.pretrained_cfg.get("first_conv")) or 3
    _, height, width = stats["input_size"]
    img_size = cfg.model_kwargs.get("img_size")
    if isinstance(img_size, int):
        height = width = img_size
    elif isinstance(img_size, (tuple, list)) and len(img_size) == 2:
        height, width = img_size
    stats["input_size"] = (in_chans, int(height), int(width))

    # A grey-scale stem built from an RGB recipe: one channel with the average statistics.
    for key in ("mean", "std"):
        values = tuple(float(v) for v in stats[key])
        if len(values) != in_chans:
            values = (sum(values) / len(values),) * in_chans
        stats[key] = values
    return stats


def build_timm_backbone(cfg: TeacherConfig) -> TimmBackbone:
    _check_name(cfg.name)
    model = _create(cfg, hub=cfg.pretrained and not cfg.weights)

    # A local file is a timm state dict; a classifier in it is ignored when no head is asked for.
    if cfg.weights:
        state = read_state_dict(cfg.weights)
        if cfg.num_classes == 0:
            state = drop_prefixes(state, _classifier_names(model), str(cfg.weights))
        load_strict(model, state, f"teacher.weights {cfg.weights}", hint="; check teacher.name and num_classes")

    # Take the classifier out so the model itself returns pre-logits features.
    head = None
    if cfg.num_classes > 0:
        classifier = model.get_classifier()
        if not isinstance(classifier, nn.Linear):
            kind = type(classifier).__name__
            raise UserError(f"timm model {cfg.name} has a {kind} classifier; only a Linear one can be the head")
        replace_module(model, classifier, nn.Identity())
        head = classifier

    feature = _resolve_feature(model, cfg.feature, cfg.name)
    model.eval()
    return TimmBackbone(model, head, cfg, feature, _data_stats(model, cfg))
