"""The distillation stage: a student s maps x straight to the targets t = R h / sqrt(K).

    L = mean over the batch of ||s(x) - t||^2 (float32)
        + ce_weight * CE(probe_head(s(x)), y) + kd_weight * KD(probe_head(s(x)), teacher logits)

Every process draws the same R from projection.seed; its SHA-256 is compared across
processes before the first step and written to the summary.

train.objective=ce | kd | fitnets trains the same student body with a baseline loss
instead (baselines.py); the validity gate and R belong to the subspace objective only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import Tensor, nn

from subdistill.config import Config
from subdistill.errors import UserError
from subdistill.projection import JLProjection
from subdistill.training import baselines, losses
from subdistill.training.heads import find_probe_head, require_probe_head
from subdistill.training.students import build_student, make_spec, save_student
from subdistill.training.targets import CachedTargets, OnlineTargets, choose_mode, read_cached_features

PROJECTION_FILE = "projection.safetensors"


def check_gate(config: Config) -> None:
    """Refuse a K that validation has not passed (unless validate.required=false)."""
    from subdistill.gate import check_gate as gate_check  # the gate reads validation records

    gate_check(config)


class DistillTask:
    stage = "distill"

    def __init__(self, config: Config, accelerator: Accelerator, log: Any = print):
        from subdistill.store import effective_teacher
        from subdistill.teachers import load_teacher

        self.config, self.accelerator = config, accelerator
        self.objective = config.train.objective
        baselines.check_objective(config)
        if self.objective == "subspace":
            check_gate(config)  # the gate judges JL-K targets; a baseline has none
        self.mode = choose_mode(config)
        self.teacher_cfg = baselines.input_teacher(config) if self.mode == "none" else effective_teacher(config)

        # Online targets need the frozen teacher; cached ones (and ce) do not load it at all.
        teacher = load_teacher(self.teacher_cfg) if self.mode == "online" else None
        wants_logits = config.train.kd_weight > 0 or self.objective == "kd"
        if wants_logits and not teacher.has_head:
            what = "train.objective=kd" if self.objective == "kd" else "train.kd_weight > 0"
            raise UserError(f"{what} needs a teacher with a head (teacher.num_classes > 0)")
        stats = self._datasets(teacher)
        width = self._targets(teacher)
        self._student(teacher, stats)
        parameters = sum(p.numel() for p in self.model.parameters())
        self.probe_head = None
        if self.objective == "subspace":
            self.probe_head = find_probe_head(config)
            require_probe_head(config, self.probe_head)
            if self.probe_head is not None:
                self.probe_head = self.probe_head.to(accelerator.device)
            same = f"same on {accelerator.num_processes} process(es)"
            detail = f"D={width}, projection sha256 {self.projection_sha256[:16]}... ({same})"
        else:
            from subdistill.data import num_classes

            classes, k = num_classes(config.data), config.projection.k
            self.model = baselines.wrap(self.objective, self.model, k, classes, width)
            extra = self.model.extra
            layer = "regressor" if self.objective == "fitnets" else "head"
            size = sum(p.numel() for p in extra.parameters())
            detail = f"baseline {self.objective} through a {layer} K -> {extra.out_features} ({size:,} parameters)"
        log(
            f"distill: targets {self.mode}, K={config.projection.k}, {detail}, student "
            f"{config.student.kind} with {parameters:,} parameters"
        )

    def _datasets(self, teacher: Optional[nn.Module]) -> Optional[dict]:
        """Both splits through the teacher's input pipeline; cached targets need the eval transform."""
        from subdistill.data import build_dataset
        from subdistill.pipeline import input_pipeline

        stats, self.collate = input_pipeline(self.config, self.teacher_cfg, teacher)
        augmented = self.mode != "cached"  # build_dataset augments only when data.augment is on
        self.train_set = build_dataset(self.config.data, "train", train_transform=augmented, stats=stats)
        self.test_set = build_dataset(self.config.data, "test", train_transform=False, stats=stats)
        return stats

    def _targets(self, teacher: Optional[nn.Module]) -> Optional[int]:
        """The projection (subspace only; checked equal on every process) and the target source; returns D.

        fitnets regresses onto h itself and kd reads the teacher's logits: no projection; ce has no targets.
        """
        config = self.config
        self.projection, self.projection_sha256, self.targets = None, None, None
        if self.mode == "none":
            return None
        cached = read_cached_features(config, self.accelerator) if teacher is None else None
        width = teacher.feature_dim if teacher is not None else int(cached["train"][0].shape[1])  # D
        if self.objective == "subspace":
            self.projection = JLProjection(config.projection.k, width, config.projection.seed)
            self.projection_sha256 = self._same_on_every_process(self.projection.sha256)
        if teacher is not None:
            self.targets = OnlineTargets(teacher, self.projection, self.accelerator)
        else:
            self.targets = CachedTargets.project(cached, self.projection, self.accelerator.device)
            self.targets.check("train", len(self.train_set))
            self.targets.check("test", len(self.test_set))
        return width

    def _student(self, teacher: Optional[nn.Module], stats: Optional[dict]) -> None:
        from subdistill.teachers import build_backbone

        # teacher_layers copies the teacher's first layers: the backbone is needed to build it.
        source = None
        if self.config.student.kind == "teacher_layers":
            source = teacher.backbone if teacher is not None else build_backbone(self.teacher_cfg)
        tokenizer = getattr(self.collate, "tokenizer", None)
        self.spec = make_spec(self.config.student, self.config.projection.k, stats, tokenizer, source)
        self.model = build_student(self.spec, source)

    def _same_on_every_process(self, sha256: str) -> str:
        everyone = gather_object([sha256]) if self.accelerator.num_processes > 1 else [sha256]
        if len(set(everyone)) != 1:
            raise RuntimeError(f"processes drew different projections: {sorted(set(everyone))}")
        self.sha256_per_process = everyone
        return sha256

    # the loss ----------------------------------------------------------------------------------

    def loss(self, model: nn.Module, inputs: Any, labels: Tensor, indices: Tensor) -> tuple[Tensor, dict]:
        cfg = self.config.train
        if self.objective != "subspace":
            teacher_out = self._teacher_out(inputs, indices, "train")
            return baselines.loss(self.objective, model, inputs, labels, teacher_out, cfg)
        teacher_logits = None
        if cfg.kd_weight > 0:
            targets, teacher_logits = self.targets.with_logits(inputs)  # (B, K), (B, C)
        else:
            targets = self.targets(inputs, indices, "train")  # (B, K)
        student_out = model(inputs)  # (B, K)
        subspace = losses.subspace_loss(student_out, targets)
        if self.probe_head is None or (cfg.ce_weight <= 0 and cfg.kd_weight <= 0):
            return subspace, {}

        probe_logits = self.probe_head(student_out.float())  # (B, C)
        parts, total = {"subspace": subspace}, subspace
        if cfg.ce_weight > 0:
            parts["ce"] = losses.probe_ce(probe_logits, labels)
            total = total + cfg.ce_weight * parts["ce"]
        if cfg.kd_weight > 0:
            parts["kd"] = losses.hinton_kd(probe_logits, teacher_logits, cfg.kd_temperature)
            total = total + cfg.kd_weight * parts["kd"]
        return total, parts

    def _teacher_out(self, inputs: Any, indices: Tensor, split: str) -> Optional[Tensor]:
        """What a baseline learns from: the teacher's logits (kd, (B, C)), its features (fitnets, (B, D)), or none."""
        if self.objective == "kd":
            return self.targets.with_logits(inputs)[1]
        if self.objective == "fitnets":
            return self.targets(inputs, indices, split)
        return None

    def score(self, model: nn.Module, inputs: Any, labels: Tensor, indices: Tensor) -> dict[str, Tensor]:
        if self.objective != "subspace":
            # Held-out scores need no teacher logits: the head is judged on the labels.
            features = self._teacher_out(inputs, indices, "test") if self.objective == "fitnets" else None
            return baselines.score(self.objective, model, inputs, labels, features)
        student_out = model(inputs).float()  # (B, K)
        targets = self.targets(inputs, indices, "test")  # (B, K)
        values = {
            "loss": losses.squared_error(student_out, targets),
            "cosine": losses.cosine(student_out, targets),
        }
        if self.probe_head is not None:
            predictions = self.probe_head(student_out).argmax(dim=1)  # (B,)
            values["accuracy"] = (predictions == labels).float()
        return values

    # outputs -------------------------------------------------------------------------------------

    def finish(self, accelerator: Accelerator, model: nn.Module, run_dir: Path) -> dict:
        baseline = isinstance(model, baselines.BaselineStudent)
        body = model.body if baseline else model
        if accelerator.is_main_process:
            save_student(body, self.spec, run_dir)
            if self.projection is not None:
                self.projection.save(run_dir / PROJECTION_FILE)
            if baseline:
                baselines.save_extra(model, run_dir)
        outputs = {
            "objective": self.objective,
            "targets": self.mode,
            "student": str(run_dir / "student.safetensors"),
            "student_parameters": sum(p.numel() for p in body.parameters()),
        }
        if self.projection is not None:
            outputs["projection_sha256"] = self.projection_sha256
            outputs["projection_sha256_per_process"] = self.sha256_per_process
        if baseline:
            name = baselines.extra_file(self.objective)
            outputs[name.split(".")[0]] = str(run_dir / name)  # "head" or "regressor"
        return outputs


def teacher_of(task: DistillTask) -> Optional[nn.Module]:
    """The frozen teacher an online task runs (None with cached targets)."""
    return getattr(task.targets, "teacher", None)
