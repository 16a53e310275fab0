"""torchvision teachers: ``torchvision.models.get_model`` by name.

The feature is the input of the model's final classifier (the last ``nn.Linear`` it
registers): the global average pool for ResNets, the final-norm class token for
``vit_b_16``, the pooled features after dropout for EfficientNet. The classifier itself
becomes the head when its size matches teacher.num_classes.
"""

from __future__ import annotations

import difflib
from typing import Any, Optional

import torch
from torch import nn
from torchvision import models as tv_models

from subdistill.config import TeacherConfig
from subdistill.data.base import downloads_allowed
from subdistill.errors import UserError
from subdistill.teachers.backbone import Backbone, check_feature, check_image_batch, first_conv_channels
from subdistill.teachers.weights import drop_prefixes, load_strict, read_state_dict, replace_module, seeded_init

IMAGENET_STATS = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "input_size": (3, 224, 224)}


class TorchvisionBackbone(Backbone):
    def __init__(self, model: nn.Module, head: Optional[nn.Linear], cfg: TeacherConfig, feature_dim: int, stats: dict):
        super().__init__(
            model,
            feature="pre_logits",
            feature_dim=feature_dim,
            modality="image",
            head=head,
            record=cfg,
            stats=stats,
        )
        self.in_chans = first_conv_channels(model)

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        images = check_image_batch(images, self.in_chans, self.record.name)
        teacher_features = self.encoder(images)  # the classifier is an Identity: (B, D)
        if isinstance(teacher_features, tuple):  # Inception/GoogLeNet in train mode add aux outputs
            teacher_features = teacher_features[0]
        return teacher_features


def _check_name(name: str) -> None:
    names = tv_models.list_models()
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; choose one of {', '.join(names)}"
    raise UserError(f"unknown torchvision model {name!r}{hint}")


def _final_classifier(model: nn.Module, name: str) -> tuple[str, nn.Linear]:
    """The last Linear the model registers is its classifier in every torchvision classifier."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"torchvision model {name} has no Linear classifier to take features from")
    return linears[-1]


def _create(cfg: TeacherConfig, hub: bool) -> nn.Module:
    try:
        with seeded_init():
            if hub:
                # torchvision downloads from its own server whatever the HF variables say.
                if not downloads_allowed():
                    raise OSError("downloads are off (an *_OFFLINE variable is set)")
                return tv_models.get_model(cfg.name, weights="DEFAULT", **cfg.model_kwargs)
            sized = {"num_classes": cfg.num_classes} if cfg.num_classes > 0 else {}
            return tv_models.get_model(cfg.name, weights=None, **sized, **cfg.model_kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"torchvision model {cfg.name} rejects model_kwargs {cfg.model_kwargs}: {err}") from None
    except OSError as err:  # no network and no cached download
        raise UserError(
            f"cannot fetch pretrained weights for torchvision model {cfg.name} ({err}); "
            "set teacher.pretrained=false or teacher.weights=FILE"
        ) from None


def _data_stats(name: str, in_chans: int) -> dict[str, Any]:
    """The preprocessing of the model's default weights (metadata only, nothing is fetched).

    It depends on the architecture alone, so a random-init build reports what the
    pretrained one would."""
    try:
        preset = tv_models.get_model_weights(name).DEFAULT.transforms()
    except (ValueError, KeyError, AttributeError):  # a model registered without weights
        preset = None
    if preset is None or not hasattr(preset, "crop_size"):
        stats = dict(IMAGENET_STATS)
    else:
        crop, resize = preset.crop_size[0], preset.resize_size[0]
        stats = {
            "mean": tuple(preset.mean),
            "std": tuple(preset.std),
            "input_size": (3, crop, crop),
            "interpolation": preset.interpolation.value,
            "crop_pct": crop / resize,
        }
    if in_chans != 3:
        stats["input_size"] = (in_chans, *stats["input_size"][1:])
        stats["mean"] = (sum(stats["mean"]) / 3,) * in_chans
        stats["std"] = (sum(stats["std"]) / 3,) * in_chans
    return stats


def build_torchvision_backbone(cfg: TeacherConfig) -> TorchvisionBackbone:
    _check_name(cfg.name)
    check_feature(cfg.feature, ("auto", "pre_logits", "avgpool"), f"the torchvision model {cfg.name}")
    hub = cfg.pretrained and not cfg.weights
    model = _create(cfg, hub)
    classifier_name, classifier = _final_classifier(model, cfg.name)
    if cfg.feature == "avgpool" and not (classifier_name == "fc" and hasattr(model, "avgpool")):
        raise UserError(f"teacher.feature=avgpool: {cfg.name} does not feed a global average pool to its classifier")

    # Without a head the classifier leaves first, so a file's classifier of any size is ignored.
    if cfg.num_classes == 0:
        replace_module(model, classifier, nn.Identity())
    if cfg.weights:
        state = read_state_dict(cfg.weights)
        if cfg.num_classes == 0:
            state = drop_prefixes(state, (classifier_name,), str(cfg.weights))
        load_strict(model, state, f"teacher.weights {cfg.weights}", hint="; check teacher.name and num_classes")

    # With a head the classifier leaves after loading; it is the head when its size is the one asked for.
    head = None
    if cfg.num_classes > 0:
        replace_module(model, classifier, nn.Identity())
        head = classifier
        if classifier.out_features != cfg.num_classes:  # hub weights come with 1000 ImageNet classes
            with seeded_init():
                head = nn.Linear(classifier.in_features, cfg.num_classes)

    model.eval()
    stats = _data_stats(cfg.name, first_conv_channels(model) or 3)
    return TorchvisionBackbone(model, head, cfg, classifier.in_features, stats)
