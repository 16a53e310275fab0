"""ONNX and TorchScript copies of an exported student, each checked against PyTorch before it is kept.

Both trace the graph form of the student (exported.ImageGraph / TextGraph): positional
tensors in, (logits (B, C), embedding (B, K)) out, no input checks. ONNX is made with
torch.onnx.export's dynamo path with a dynamic batch axis (and a dynamic token axis for
text), traced at batch 2 so the batch size is never specialised, then run with
onnxruntime at batch 1 and at an odd batch (3): the largest absolute difference to the
PyTorch outputs must stay under TOLERANCE, or the export fails and nothing is kept.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from subdistill.errors import UserError
from subdistill.exported import ONNX_FILE, TORCHSCRIPT_FILE, ExportedStudent, graph_of

TOLERANCE = 1e-4
CHECK_BATCHES = (1, 3)  # batch 1 and an odd batch, as the issue asks
TRACE_BATCH = 2  # torch.export specialises sizes 0 and 1: trace at 2 so the batch axis stays free
OUTPUT_NAMES = ["class_logits", "subspace_embedding"]  # names no student's own layers use


def example_inputs(student: ExportedStudent, seed: int = 0) -> dict[int, tuple[Tensor, ...]]:
    """{batch size: graph inputs} for tracing and checking; text rows get different lengths and padding."""
    generator = torch.Generator().manual_seed(seed)
    examples = {}
    for size in (TRACE_BATCH, *CHECK_BATCHES):
        if student.modality == "image":
            c, h, w = student.config["preprocessing"]["input_size"]
            examples[size] = (torch.randn(size, c, h, w, generator=generator),)
            continue
        tokens = 6 + 3 * size  # each batch size its own length: the token axis is checked as well
        vocab = int(student.config["architecture"]["vocab_size"])
        pad = int(student.config["architecture"].get("pad_token_id", 0))
        input_ids = torch.randint(0, vocab, (size, tokens), generator=generator)
        attention_mask = torch.ones(size, tokens, dtype=torch.long)
        attention_mask[-1, tokens // 2 :] = 0  # the last row is padded
        input_ids[attention_mask == 0] = pad
        tensors = [input_ids, attention_mask]
        if "token_type_ids" in student.config["inputs"]:
            tensors.append(torch.zeros(size, tokens, dtype=torch.long))
        examples[size] = tuple(tensors)
    return examples


def input_names(student: ExportedStudent) -> list[str]:
    if student.modality == "image":
        return ["images"]
    names = ["input_ids", "attention_mask"]
    return names + (["token_type_ids"] if "token_type_ids" in student.config["inputs"] else [])


def as_inputs(student: ExportedStudent, tensors: tuple[Tensor, ...]) -> Any:
    """Graph inputs -> what ExportedStudent itself takes (a tensor or the tokenizer's dict)."""
    return tensors[0] if student.modality == "image" else dict(zip(input_names(student), tensors))


@torch.inference_mode()
def reference_outputs(student: ExportedStudent, tensors: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    return student(as_inputs(student, tensors), return_embedding=True)  # (B, C), (B, K)


def largest_differences(outputs: list[Any], reference: tuple[Tensor, Tensor]) -> float:
    return max(float((torch.as_tensor(out) - ref).abs().max()) for out, ref in zip(outputs, reference))


def check_round_trip(
    student: ExportedStudent,
    reloaded: ExportedStudent,
    examples: dict[int, tuple[Tensor, ...]],
) -> dict:
    """The folder, loaded back, must give exactly what the run's student gives."""
    diffs = {
        f"batch_{size}": largest_differences(list(reference_outputs(reloaded, examples[size])),
                                             reference_outputs(student, examples[size]))
        for size in CHECK_BATCHES
    }
    if max(diffs.values()) != 0.0:
        raise UserError(f"the exported weights, loaded back, do not reproduce the run's student: {diffs}")
    return {"max_abs_diff": diffs}


def dynamic_shapes(student: ExportedStudent) -> tuple[dict, ...]:
    batch = torch.export.Dim("batch")
    if student.modality == "image":
        return ({0: batch},)
    tokens = torch.export.Dim("tokens")
    return tuple({0: batch, 1: tokens} for _ in input_names(student))


def export_onnx(student: ExportedStudent, folder: Path, examples: dict[int, tuple[Tensor, ...]]) -> dict:
    """folder/model.onnx, checked with onnxruntime at batch 1 and 3."""
    import onnxruntime

    path, names = folder / ONNX_FILE, input_names(student)
    graph = graph_of(student)
    try:
        # The exporter narrates each stage on stdout and warns about deprecated internals.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph,
                examples[TRACE_BATCH],
                dynamo=True,
                dynamic_shapes=dynamic_shapes(student),
                input_names=names,
                output_names=OUTPUT_NAMES,
                verbose=False,
            )
            program.save(str(path))
    except Exception as err:  # the exporter raises many types; the user can still export other formats
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"ONNX export of student {student.config['architecture']['student']['kind']} failed "
                        f"({first}); leave onnx out of export.formats to export the rest") from None

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diffs = {}
    for size in CHECK_BATCHES:
        feed = {name: tensor.numpy() for name, tensor in zip(names, examples[size])}
        reference = reference_outputs(student, examples[size])
        diffs[f"batch_{size}"] = largest_differences(session.run(None, feed), reference)
    check_tolerance("ONNX (onnxruntime)", diffs)
    opsets = {entry.domain or "ai.onnx": entry.version for entry in program.model_proto.opset_import}
    axes = {name: ["batch"] + (["tokens"] if student.modality == "text" else []) for name in names}
    return {"file": ONNX_FILE, "inputs": names, "outputs": OUTPUT_NAMES, "dynamic_axes": axes, "opset": opsets,
            "max_abs_diff": diffs, "tolerance": TOLERANCE, "runtime": f"onnxruntime {onnxruntime.__version__}"}


def export_torchscript(student: ExportedStudent, folder: Path, examples: dict[int, tuple[Tensor, ...]]) -> dict:
    """folder/model.pt, traced at batch 2, loaded back and checked at batch 1 and 3."""
    path = folder / TORCHSCRIPT_FILE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream; tracing still works
        try:
            traced = torch.jit.trace(graph_of(student), examples[TRACE_BATCH], check_trace=False)
        except Exception as err:  # tracing fails on data-dependent Python control flow
            raise UserError(f"TorchScript tracing failed ({str(err).splitlines()[0]}); leave torchscript out of "
                            "export.formats to export the rest") from None
        traced.save(str(path))
        loaded = torch.jit.load(str(path))
    diffs = {}
    with torch.inference_mode():
        for size in CHECK_BATCHES:
            diffs[f"batch_{size}"] = largest_differences(list(loaded(*examples[size])),
                                                         reference_outputs(student, examples[size]))
    check_tolerance("TorchScript", diffs)
    return {"file": TORCHSCRIPT_FILE, "inputs": input_names(student), "outputs": ["logits", "embedding"],
            "max_abs_diff": diffs, "tolerance": TOLERANCE}


def check_tolerance(what: str, diffs: dict[str, float]) -> None:
    if max(diffs.values()) >= TOLERANCE:
        raise UserError(f"{what} differs from PyTorch by {diffs} (tolerance {TOLERANCE}); nothing was exported")
