"""The fine-tuning stage: the whole teacher trained with cross-entropy through its head.

This sets the ceiling the method measures against (DESIGN.md). The run folder is
the store's teacher folder (checkpoints/teachers/<recipe>-<key>/), and the run ends
by writing the teacher checkpoint there, which ``store.effective_teacher`` then
points every later step at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn.functional as F
from accelerate import Accelerator
from torch import Tensor, nn

from subdistill.config import Config
from subdistill.errors import UserError


class Classifier(nn.Module):
    """inputs -> logits (B, C); DDP syncs gradients only through forward, so the head runs inside it."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, inputs: Any) -> Tensor:
        return self.backbone.logits(inputs)


class FinetuneTask:
    stage = "finetune"

    def __init__(self, config: Config, accelerator: Accelerator, log: Any = print):
        from subdistill.data import build_dataset, num_classes
        from subdistill.pipeline import input_pipeline
        from subdistill.teachers import build_backbone

        self.config = config
        classes = num_classes(config.data)
        if config.teacher.num_classes != classes:
            raise UserError(
                f"fine-tuning needs teacher.num_classes={classes} (the classes of data.source={config.data.source}), "
                f"got {config.teacher.num_classes}"
            )
        backbone = build_backbone(config.teacher)

        # A pooler the feature rule skips would get no gradient, and DDP refuses unused parameters.
        encoder = getattr(backbone, "encoder", None)
        if backbone.feature != "pooler" and getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None
        self.model = Classifier(backbone.requires_grad_(True))

        stats, self.collate = input_pipeline(config, config.teacher, backbone)
        self.train_set = build_dataset(config.data, "train", train_transform=True, stats=stats)
        self.test_set = build_dataset(config.data, "test", train_transform=False, stats=stats)
        parameters = sum(p.numel() for p in backbone.parameters())
        log(f"finetune: teacher {config.teacher.source}:{config.teacher.name}, D={backbone.feature_dim}, "
            f"{classes} classes, {parameters:,} parameters")
        if not config.teacher.finetune:
            log("note: teacher.finetune=false, so later steps keep using the recipe's own teacher, not this one")

    def loss(self, model: nn.Module, inputs: Any, labels: Tensor, indices: Tensor) -> tuple[Tensor, dict]:
        logits = model(inputs)  # (B, C)
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.config.finetune.label_smoothing), {}

    def score(self, model: nn.Module, inputs: Any, labels: Tensor, indices: Tensor) -> dict[str, Tensor]:
        logits = model(inputs).float()  # (B, C)
        return {
            "loss": F.cross_entropy(logits, labels, reduction="none"),
            "accuracy": (logits.argmax(dim=1) == labels).float(),
        }

    def finish(self, accelerator: Accelerator, model: nn.Module, run_dir: Path) -> dict:
        from subdistill.teachers import save_teacher_checkpoint

        if accelerator.is_main_process:
            save_teacher_checkpoint(model.backbone, self.config.teacher, run_dir)
        return {"teacher": str(run_dir)}
