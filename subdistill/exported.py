"""A student exported by `subdistill export`: input -> class logits, with neither teacher nor recipe.

    model = subdistill.load_student("checkpoints/<run>/export")
    logits = model(inputs)                                     # (B, C)
    logits, embedding = model(inputs, return_embedding=True)  # (B, C), (B, K)
    embedding = model.embed(inputs)                            # (B, K)

Inputs are what the student was trained on. Images: float32 (B, C, H, W), normalised
with the mean and std in config.json's preprocessing. Text: the tokenizer's dict
(input_ids, attention_mask[, token_type_ids]) as int64; the tokenizer files are in the
folder and ``model.tokenizer()`` loads them. Anything else is refused with a UserError
that says what was expected.

The folder:
  model.safetensors    body.* (the student, x -> R^K) and head.* (the probe head K -> C, merged)
  config.json          format, architecture (the student spec), K, classes, where the head came
                       from, the projection (K, D, seed, SHA-256 of R), the teacher's fingerprint,
                       preprocessing, the SHA-256 of model.safetensors
  tokenizer files      text students only
  model.onnx, model.pt when asked for, and export_report.json
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from subdistill.errors import UserError
from subdistill.hashing import sha256_file

FORMAT = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.pt"
REPORT_FILE = "export_report.json"
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
REQUIRED = ("format", "architecture", "k", "num_classes", "modality", "inputs", "preprocessing", "weights_sha256")


class ExportedStudent(nn.Module):
    """The student body (x -> (B, K)) and its merged probe head (K -> C), checking what it is given."""

    def __init__(self, body: nn.Module, head: nn.Linear, config: dict, folder: Optional[Path] = None):
        super().__init__()
        self.body, self.head = body, head
        self.config, self.folder = config, folder

    @property
    def k(self) -> int:
        return int(self.config["k"])

    @property
    def num_classes(self) -> int:
        return int(self.config["num_classes"])

    @property
    def modality(self) -> str:
        return self.config["modality"]

    def forward(self, inputs: Any, return_embedding: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        embedding = self.embed(inputs)  # (B, K)
        logits = self.head(embedding)  # (B, C)
        return (logits, embedding) if return_embedding else logits

    def embed(self, inputs: Any) -> Tensor:
        """The K-dim embedding s(x) (B, K): the student's own output, in the teacher's JL subspace."""
        self.check_inputs(inputs)
        return self.body(inputs)

    def check_inputs(self, inputs: Any) -> None:
        if self.modality == "image":
            check_images(inputs, tuple(self.config["preprocessing"]["input_size"]))
        else:
            check_tokens(inputs, self.config["inputs"], int(self.config["architecture"]["vocab_size"]))

    def tokenizer(self) -> Any:
        """The teacher's tokenizer, saved in the export folder (text students only)."""
        if self.modality != "text" or self.folder is None:
            raise UserError("only a text student loaded from its folder has a tokenizer")
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.folder))


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def check_images(images: Any, input_size: tuple[int, ...]) -> None:
    """float32 (B, C, H, W) with (C, H, W) the training input size."""
    c, h, w = input_size
    wanted = f"float32 images of shape (B, {c}, {h}, {w}), normalised as config.json's preprocessing says"
    if not isinstance(images, Tensor) or images.dtype != torch.float32:
        integer = isinstance(images, Tensor) and not images.is_floating_point()
        hint = " (integer pixels must be scaled to [0, 1] and normalised first)" if integer else ""
        raise UserError(f"this student takes {wanted}; got {_describe(images)}{hint}")
    if images.dim() != 4 or tuple(images.shape[1:]) != (c, h, w) or images.shape[0] < 1:
        raise UserError(f"this student takes {wanted}; got {_describe(images)}")


def check_tokens(batch: Any, names: list[str], vocab_size: int) -> None:
    """The tokenizer's dict: int64 (B, T) tensors, the same shape each, token ids inside the vocabulary."""
    wanted = f"a dict of int64 (B, T) tensors {', '.join(names)} from the tokenizer in the export folder"
    if not isinstance(batch, Mapping) or "input_ids" not in batch:
        raise UserError(f"this student takes {wanted}; got {_describe(batch)}")
    ids = batch["input_ids"]
    for name in [n for n in TEXT_INPUTS if batch.get(n) is not None]:
        value = batch[name]
        if not isinstance(value, Tensor) or value.dtype != torch.int64 or value.dim() != 2:
            raise UserError(f"this student takes {wanted}; {name} is {_describe(value)}")
        if value.shape != ids.shape or value.shape[0] < 1:
            raise UserError(f"{name} has shape {tuple(value.shape)}, input_ids {tuple(ids.shape)}; they must match")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise UserError(f"token ids must be in [0, {vocab_size}); got {int(ids.min())}..{int(ids.max())}")


class ImageGraph(nn.Module):
    """What ONNX and TorchScript trace for images: a tensor in, (logits (B, C), embedding (B, K)) out."""

    def __init__(self, student: ExportedStudent):
        super().__init__()
        self.body, self.head = student.body, student.head

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        embedding = self.body(images)  # (B, K)
        return self.head(embedding), embedding


class TextGraph(nn.Module):
    """The same for text: token tensors in, (logits (B, C), embedding (B, K)) out."""

    def __init__(self, student: ExportedStudent):
        super().__init__()
        self.body, self.head = student.body, student.head

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Optional[Tensor] = None):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            batch["token_type_ids"] = token_type_ids
        embedding = self.body(batch)  # (B, K)
        return self.head(embedding), embedding


def graph_of(student: ExportedStudent) -> nn.Module:
    return (ImageGraph if student.modality == "image" else TextGraph)(student).eval()


def read_config(folder: Path) -> dict:
    """config.json of an export folder, or a UserError saying why the folder is not one."""
    path = Path(folder) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if not isinstance(config, dict) or any(key not in config for key in REQUIRED):
        missing = [key for key in REQUIRED if not isinstance(config, dict) or key not in config]
        raise UserError(f"{path} is not an exported student's config (it lacks {', '.join(missing)})")
    if config["format"] != FORMAT:
        raise UserError(f"{path} has format {config['format']!r}; this subdistill reads format {FORMAT}")
    return config


def check_projection(config: dict, where: Path) -> None:
    """The recorded fingerprint of R must be the R that K, D and the seed draw."""
    from subdistill.projection import draw_matrix, fingerprint

    projection = config.get("projection")
    if projection is None:
        return  # a baseline's own head: no projection behind it
    try:
        k, d, seed, recorded = projection["k"], projection["d"], projection["seed"], projection["sha256"]
    except (TypeError, KeyError):
        raise UserError(f"{where}: the projection entry needs k, d, seed and sha256") from None
    if k != config["k"] or fingerprint(draw_matrix(k, d, seed)) != recorded:
        raise UserError(
            f"{where}: the projection fingerprint {str(recorded)[:12]}... is not the R drawn with K={k}, D={d}, "
            f"seed={seed} (or K differs from the student's K={config['k']}); the folder was edited"
        )


def load_student(path: str | Path) -> ExportedStudent:
    """Load an export folder strictly: every file checked against config.json, every weight key accounted for."""
    from safetensors.torch import load_file

    from subdistill.training.students import StudentSpec, build_student, load_exactly

    folder = Path(path).expanduser()
    if not (folder / CONFIG_FILE).is_file() or not (folder / MODEL_FILE).is_file():
        hint = "; it is a run folder: export it first with subdistill export run=..." if (
            folder / "student.json").is_file() else ""
        raise UserError(f"{folder} is not an exported student (it needs {CONFIG_FILE} and {MODEL_FILE}){hint}")
    config = read_config(folder)
    actual = sha256_file(folder / MODEL_FILE)
    if actual != config["weights_sha256"]:
        raise UserError(
            f"{folder / MODEL_FILE} does not match {CONFIG_FILE} (SHA-256 {actual[:12]}... != recorded "
            f"{str(config['weights_sha256'])[:12]}...): it was changed or cut short; export the run again"
        )
    check_projection(config, folder / CONFIG_FILE)
    try:
        spec = StudentSpec(**config["architecture"])
    except TypeError as err:
        raise UserError(f"{folder / CONFIG_FILE}: its architecture is not a student spec ({err})") from None
    if spec.k != config["k"]:
        raise UserError(f"{folder / CONFIG_FILE}: the architecture gives K={spec.k}, the config K={config['k']}")

    model = ExportedStudent(build_student(spec), nn.Linear(spec.k, int(config["num_classes"])), config, folder)
    try:
        state = load_file(str(folder / MODEL_FILE))
    except Exception as err:  # safetensors raises its own types for damaged files
        raise UserError(f"cannot read {folder / MODEL_FILE}: {err}") from None
    load_exactly(model, state, f"{folder / MODEL_FILE}")
    return model.eval()
