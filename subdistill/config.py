"""Typed configuration: one frozen dataclass per component, each owning its defaults.

A recipe (``recipes/NAME.yaml``) holds only its differences from these defaults;
``subdistill.recipes.resolve`` merges defaults, recipe and command-line overrides
and builds a frozen ``Config``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class ProjectionConfig:
    k: int = 64  # target width K
    seed: int = 42  # R is drawn from torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class TeacherConfig:
    # timm | hf | torchvision | checkpoint
    source: str = "timm"
    # timm/torchvision model name, HF hub id or local folder ("package:NAME" finds a
    # model folder shipped inside an installed Python package), or a checkpoint folder
    name: str = "resnet18"
    pretrained: bool = True  # hub weights when reachable; false builds random-init
    weights: Optional[str] = None  # local weights file (.safetensors or torch state dict)
    # auto | cls | avgpool | pooler | mean | pre_logits
    feature: str = "auto"
    num_classes: int = 0  # size of the classification head, 0 for none
    # extra constructor arguments: timm create_model kwargs, or HF config overrides
    model_kwargs: dict = field(default_factory=dict)
    finetune: bool = False  # fine-tune on the task before extracting features


@dataclass(frozen=True)
class DataConfig:
    # fashion_mnist | cifar100 | imagenet100 | mnli | wordnet_nouns | fake_images | fake_text
    source: str = "fashion_mnist"
    root: str = "data"  # where downloads or local copies live
    augment: bool = True  # train-split augmentation as DESIGN.md describes
    image_size: int = 0  # resize to this side; 0 keeps the teacher's own input size
    cutout: int = 0  # side of the one cutout hole in pixels, 0 for none
    max_length: int = 128  # text: tokens per example
    limit_train: int = 0  # keep only the first N train examples, 0 for all
    limit_test: int = 0
    num_workers: int = 2


@dataclass(frozen=True)
class StudentConfig:
    # timm | hf_encoder | teacher_layers | fmnist_cnn | text_cnn
    kind: str = "fmnist_cnn"
    name: str = ""  # timm model name, for kind=timm
    width: int = 32  # base channel or hidden width of the small builders
    layers: int = 2  # teacher_layers: copy the teacher's first N layers
    model_kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    stage: str = "distill"  # distill | finetune
    # subspace: ||s(x) - t||^2, the method. Baselines on the same student body x -> R^K:
    # ce (a K -> C head, labels only), kd (that head on the teacher's logits, Hinton KD),
    # fitnets (a K -> D regressor onto the full teacher_features, dropped after training)
    objective: str = "subspace"
    epochs: int = 10
    max_steps: int = 0  # stop after this many optimizer steps, 0 for epochs only
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_accum: int = 1
    clip_grad: float = 1.0  # max gradient norm, 0 for none
    mixed_precision: str = "no"  # no | bf16 | fp16
    targets: str = "auto"  # auto | online | cached
    ce_weight: float = 0.0  # cross-entropy through the teacher's JL probe head
    kd_weight: float = 0.0  # Hinton logit KD
    kd_temperature: float = 4.0
    log_every: int = 50
    eval_every: int = 500
    save_every: int = 500
    keep_last: int = 2
    stop_at: int = 0  # pause after this optimizer step (state saved, schedule unchanged); resume=latest continues


@dataclass(frozen=True)
class FinetuneConfig:
    """Full fine-tuning of the teacher with cross-entropy (train.stage=finetune).

    Logging, saving and precision settings are shared with ``train``.
    """

    epochs: int = 5
    max_steps: int = 0
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 100
    optimizer: str = "adamw"  # adamw | sgd
    label_smoothing: float = 0.0


@dataclass(frozen=True)
class ProbeConfig:
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    epochs: int = 3
    batch_size: int = 32
    ks: list[int] = field(default_factory=lambda: [512, 256, 128, 64])  # the K sweep


@dataclass(frozen=True)
class ValidateConfig:
    epsilon: float = 0.01  # a JL-K subspace is valid within this accuracy of full width
    required: bool = True  # distillation refuses an unvalidated K
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # extra R seeds for the spread
    sample: int = 1000  # examples for the geometry check and t-SNE


@dataclass(frozen=True)
class FeaturesConfig:
    """The cache of teacher_features (checkpoints/features/<fingerprint>/)."""

    dtype: str = "float16"  # float16 | float32: how cached teacher_features are stored
    batch_size: int = 256  # examples per teacher forward during extraction
    shard_batches: int = 20  # write a resumable shard every this many batches


@dataclass(frozen=True)
class ExportConfig:
    """`subdistill export run=...`: a self-contained folder with the probe head merged."""

    formats: list[str] = field(default_factory=lambda: ["safetensors", "onnx", "torchscript"])
    output: str = ""  # the export folder; empty means <run>/export


@dataclass(frozen=True)
class Config:
    recipe: str = ""
    tiny: bool = False  # the recipe's tiny form: few examples, small models, a step or two
    seed: int = 0  # data order and initialisation
    output_root: str = "checkpoints"
    run: str = ""  # run folder name; empty picks <recipe>-<time>
    resume: Optional[str] = None  # latest | a path
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    data: DataConfig = field(default_factory=DataConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
