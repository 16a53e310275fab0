"""Students: small models that map an input straight to R^K.

  fmnist_cnn      five 3x3 convolutions with GroupNorm, ~100k parameters at width 32
  timm            any timm model by name, its classifier built with K outputs
  hf_encoder      a small BERT encoder from a config (width, layers), mean-pooled
  teacher_layers  the teacher's embeddings and first N layers, DistilBERT-style
  text_cnn        token embeddings, two 1-D convolutions, max-pooled

Only layers the loss uses are built (no pooler, no classifier beyond K), so DDP
never meets an unused parameter. GroupNorm rather than BatchNorm keeps the CNN's
output independent of how a batch is split across processes or micro-batches.

A ``StudentSpec`` holds everything needed to rebuild the architecture without the
teacher; it is written as student.json next to student.safetensors.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from safetensors.torch import load_file
from torch import nn

from subdistill.config import StudentConfig
from subdistill.errors import UserError
from subdistill.hashing import sha256_file
from subdistill.tensorfile import save_tensors

KINDS = ("fmnist_cnn", "timm", "hf_encoder", "teacher_layers", "text_cnn")
TEXT_KINDS = ("hf_encoder", "teacher_layers", "text_cnn")
WEIGHTS_FILE = "student.safetensors"
SPEC_FILE = "student.json"


@dataclass(frozen=True)
class StudentSpec:
    """What rebuilds a student: the recipe's section plus the facts taken from data and teacher."""

    student: dict  # StudentConfig as a dict
    k: int  # output width K
    in_chans: int = 0  # images: input channels
    vocab_size: int = 0  # text: tokenizer vocabulary
    pad_token_id: int = 0
    encoder_config: Optional[dict] = None  # transformers students: the full config of the encoder
    pooling: str = "mean"  # transformers students: mean | cls
    extra: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.student["kind"]


def make_spec(
    cfg: StudentConfig,
    k: int,
    stats: Optional[dict],
    tokenizer: Any = None,
    teacher_backbone: Optional[nn.Module] = None,
) -> StudentSpec:
    """Fill in the spec from the input pipeline (stats or tokenizer) and, for teacher_layers, the teacher."""
    if cfg.kind not in KINDS:
        raise UserError(f"unknown student.kind {cfg.kind!r}; choose one of {', '.join(KINDS)}")
    base = dict(student=dataclasses.asdict(cfg), k=int(k))
    if cfg.kind not in TEXT_KINDS:
        if stats is None:
            raise UserError(f"student.kind={cfg.kind} takes images, but the data is text")
        return StudentSpec(**base, in_chans=int(stats["input_size"][0]))
    if tokenizer is None:
        raise UserError(f"student.kind={cfg.kind} takes text, but the data is images")
    base.update(vocab_size=len(tokenizer), pad_token_id=int(tokenizer.pad_token_id or 0))
    if cfg.kind == "hf_encoder":
        return StudentSpec(**base, encoder_config=_small_bert_config(cfg, base["vocab_size"], base["pad_token_id"]))
    if cfg.kind == "teacher_layers":
        encoder = _teacher_encoder(teacher_backbone)
        config = copy.deepcopy(encoder.config)
        if not 1 <= cfg.layers <= int(config.num_hidden_layers):
            raise UserError(f"student.layers={cfg.layers}: the teacher has {config.num_hidden_layers} layers")
        config.num_hidden_layers = int(cfg.layers)
        pooling = "mean" if getattr(teacher_backbone, "feature", "cls") == "mean" else "cls"
        return StudentSpec(**base, encoder_config=config.to_dict(), pooling=pooling)
    return StudentSpec(**base)


def _small_bert_config(cfg: StudentConfig, vocab_size: int, pad_token_id: int) -> dict:
    from transformers import BertConfig

    width = int(cfg.width)
    settings = dict(
        vocab_size=vocab_size,
        hidden_size=width,
        num_hidden_layers=int(cfg.layers),
        num_attention_heads=max(1, width // 64),
        intermediate_size=4 * width,
        max_position_embeddings=512,
        pad_token_id=pad_token_id,
    )
    settings.update(cfg.model_kwargs)
    if settings["hidden_size"] % settings["num_attention_heads"]:
        width, heads = settings["hidden_size"], settings["num_attention_heads"]
        raise UserError(f"student width {width} is not divisible by {heads} attention heads")
    return BertConfig(**settings).to_dict()


def _teacher_encoder(teacher_backbone: Optional[nn.Module]) -> nn.Module:
    encoder = getattr(teacher_backbone, "encoder", None)
    if encoder is None or not hasattr(encoder, "config"):
        raise UserError("student.kind=teacher_layers needs a Hugging Face text teacher (teacher.source=hf)")
    return encoder


class FashionCNN(nn.Module):
    """(B, C, H, W) -> (B, K): widths w, w | pool | 2w, 2w, 2w | global mean | linear."""

    def __init__(self, k: int, in_chans: int = 1, width: int = 32):
        super().__init__()
        widths = [in_chans, width, width, 2 * width, 2 * width, 2 * width]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(8, c_out), nn.ReLU()]
            if i in (1, 3):
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(widths[-1], k)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.features(images).mean(dim=(2, 3))  # (B, 2w)
        return self.out(pooled)  # (B, K)


class EncoderStudent(nn.Module):
    """A transformers encoder (no pooler), pooled over tokens and mapped to K."""

    def __init__(self, encoder: nn.Module, k: int, pooling: str):
        super().__init__()
        self.encoder, self.pooling = encoder, pooling
        self.out = nn.Linear(int(encoder.config.hidden_size), k)
        accepted = inspect.signature(encoder.forward).parameters
        self.input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        inputs = {n: batch[n] for n in self.input_names if batch.get(n) is not None}
        hidden = self.encoder(**inputs).last_hidden_state  # (B, T, H)
        if self.pooling == "cls":
            return self.out(hidden[:, 0])  # (B, K)
        mask = inputs.get("attention_mask")
        mask = torch.ones(hidden.shape[:2], device=hidden.device) if mask is None else mask
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)  # (B, H)
        return self.out(pooled)  # (B, K)


class TextCNN(nn.Module):
    """Token embeddings (B, T, w) -> convolutions of width 3 and 5 -> masked max over T -> (B, K)."""

    def __init__(self, k: int, vocab_size: int, width: int, pad_token_id: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=pad_token_id)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, size, padding=size // 2) for size in (3, 5))
        self.out = nn.Linear(2 * width, k)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        tokens = self.embed(batch["input_ids"]).transpose(1, 2)  # (B, w, T)
        mask = batch.get("attention_mask")
        pooled = []
        for conv in self.convs:
            maps = torch.relu(conv(tokens))  # (B, w, T)
            if mask is not None:
                maps = maps.masked_fill(mask[:, None, :] == 0, float("-inf"))
            pooled.append(maps.amax(dim=2))  # (B, w)
        return self.out(torch.cat(pooled, dim=1))  # (B, K)


def _timm_student(spec: StudentSpec) -> nn.Module:
    import timm

    cfg = StudentConfig(**spec.student)
    if not cfg.name or not timm.is_model(cfg.name):
        raise UserError(f"student.kind=timm needs student.name set to a timm model, got {cfg.name!r}")
    kwargs = {"pretrained": False, "in_chans": spec.in_chans, **cfg.model_kwargs}
    try:
        # The classifier is built with K outputs: the model's own pooled width ends at K.
        return timm.create_model(cfg.name, num_classes=spec.k, **kwargs)
    except TypeError as err:
        raise UserError(f"timm model {cfg.name} rejects student.model_kwargs {cfg.model_kwargs}: {err}") from None


def _encoder_from_config(config_dict: dict) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(**config_dict)
    encoder = AutoModel.from_config(config)
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # the student pools itself; an unused pooler would break DDP
    return encoder


def _copy_teacher_layers(student_encoder: nn.Module, teacher_backbone: nn.Module) -> None:
    """Every student key (embeddings, layers 0..N-1) has the same name in the teacher."""
    teacher_state = _teacher_encoder(teacher_backbone).state_dict()
    student_state = student_encoder.state_dict()
    missing = [key for key in student_state if key not in teacher_state]
    if missing:
        raise UserError(f"teacher lacks {len(missing)} student keys, e.g. {missing[:4]}")
    student_encoder.load_state_dict({key: teacher_state[key].detach().clone() for key in student_state})


def check_spec(spec: StudentSpec) -> None:
    """The facts each kind of student needs, so a damaged student.json is a message, not a traceback."""
    kinds = ("fmnist_cnn", "timm", "text_cnn", "hf_encoder", "teacher_layers")
    if not isinstance(spec.student, dict) or spec.student.get("kind") not in kinds:
        raise UserError(f"student spec names kind {spec.student.get('kind')!r}; expected one of {', '.join(kinds)}")
    if not isinstance(spec.k, int) or spec.k < 1:
        raise UserError(f"student spec has K={spec.k!r}; K must be a positive integer")
    needs = {
        "fmnist_cnn": spec.in_chans >= 1,
        "timm": bool(spec.student.get("name")),
        "text_cnn": spec.vocab_size >= 1,
        "hf_encoder": isinstance(spec.encoder_config, dict),
        "teacher_layers": isinstance(spec.encoder_config, dict),
    }
    if not needs[spec.kind]:
        raise UserError(f"student spec of kind {spec.kind} lacks what that kind is built from (in_chans, name, "
                        "vocab_size or encoder_config)")


def build_student(spec: StudentSpec, teacher_backbone: Optional[nn.Module] = None) -> nn.Module:
    """The student for ``spec``; teacher_layers copies the teacher's weights when it is given."""
    check_spec(spec)
    cfg = StudentConfig(**spec.student)
    if spec.kind == "fmnist_cnn":
        return FashionCNN(spec.k, spec.in_chans, cfg.width)
    if spec.kind == "timm":
        return _timm_student(spec)
    if spec.kind == "text_cnn":
        return TextCNN(spec.k, spec.vocab_size, cfg.width, spec.pad_token_id)
    encoder = _encoder_from_config(spec.encoder_config)
    if spec.kind == "teacher_layers" and teacher_backbone is not None:
        _copy_teacher_layers(encoder, teacher_backbone)
    return EncoderStudent(encoder, spec.k, spec.pooling)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weights with no wrapper prefixes (DDP's module., torch.compile's _orig_mod.), contiguous, on CPU."""
    state = {}
    for key, value in model.state_dict().items():
        for prefix in ("module.", "_orig_mod."):
            key = key.replace(prefix, "")
        state[key] = value.detach().to("cpu").contiguous()
    return state


def save_student(model: nn.Module, spec: StudentSpec, folder: Path) -> Path:
    """folder/student.safetensors (plain keys) and folder/student.json (the spec)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WEIGHTS_FILE
    save_tensors(plain_state_dict(model), str(path), metadata={"kind": spec.kind, "k": str(spec.k)})
    # The spec records its weights' hash, so weights swapped in from another run are refused.
    tree = {**dataclasses.asdict(spec), "weights_sha256": sha256_file(path)}
    (folder / SPEC_FILE).write_text(json.dumps(tree, indent=2, default=str))
    return path


def load_student(folder: Path) -> tuple[nn.Module, StudentSpec]:
    """Rebuild a saved student (no teacher needed) and load its weights strictly."""
    folder = Path(folder)
    if not (folder / SPEC_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise UserError(f"{folder} holds no student ({SPEC_FILE} and {WEIGHTS_FILE})")
    spec = read_spec(folder / SPEC_FILE)
    recorded = json.loads((folder / SPEC_FILE).read_text()).get("weights_sha256")
    if recorded is not None and recorded != sha256_file(folder / WEIGHTS_FILE):
        raise UserError(f"{folder / WEIGHTS_FILE} is not the file {SPEC_FILE} was written with (SHA-256 differs)")
    model = build_student(spec)
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except Exception as err:  # safetensors raises its own types for damaged or cut-short files
        raise UserError(f"cannot read {folder / WEIGHTS_FILE}: {err}") from None

    load_exactly(model, state, f"{folder / WEIGHTS_FILE} (for the student {SPEC_FILE} describes)")
    return model.eval(), spec


def load_exactly(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load every key of ``state`` into ``model`` or raise a UserError naming what does not fit.

    Missing, unexpected and mis-shaped keys are all refused: nothing is ever loaded partially.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    problems = [
        f"{what} {names[:4]}" + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        for what, names in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped", mis_shaped))
        if names
    ]
    if problems:
        raise UserError(f"{source} does not fit the model: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


def read_spec(path: Path) -> StudentSpec:
    """A student.json back as a StudentSpec, or a UserError saying why it is not one."""
    try:
        tree = json.loads(Path(path).read_text())
        tree.pop("weights_sha256", None)
        spec = StudentSpec(**tree)
        StudentConfig(**spec.student)
    except (OSError, ValueError, TypeError) as err:
        raise UserError(f"{path} is not a student spec: {err}") from None
    return spec
