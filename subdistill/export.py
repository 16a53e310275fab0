"""`subdistill export run=NAME_OR_PATH [export.formats=[safetensors,onnx,torchscript]] [export.output=DIR]`

Turns a finished run into a folder a user can ship (exported.py says what it holds):
the student body with its probe head merged, so it maps an input to class logits and,
on request, to its K-dim embedding. The head is the teacher's JL-K probe head for a
subspace run (validate made it; the student is trained into its input space) and the
run's own head for a ce or kd baseline. model.safetensors and config.json are always
written; ONNX (dynamic batch axis, checked against PyTorch with onnxruntime) and
TorchScript on request. export_report.json holds the checks and a size report against
the teacher.

The folder is assembled beside its destination (default <run>/export) and renamed into
place only once every file is written and checked, so a failed export leaves nothing
half-written and an earlier export whole.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

from torch import nn

from subdistill.config import Config
from subdistill.errors import UserError
from subdistill.evaluation.runs import FinishedRun, open_run, resolve_run
from subdistill.export_formats import check_round_trip, example_inputs, export_onnx, export_torchscript
from subdistill.exported import (
    CONFIG_FILE,
    FORMAT,
    MODEL_FILE,
    REPORT_FILE,
    ExportedStudent,
    load_student,
    sha256_file,
)
from subdistill.recipes import check_value, split_overrides, valid_keys
from subdistill.tensorfile import save_tensors

EXPORT_DIR = "export"
TEXT_DEFAULT = ("input_ids", "attention_mask")  # a text student that does not name its inputs


def parse_arguments(argv: list[str]) -> tuple[str, str, dict[str, Any]]:
    """(run, output_root, {export.* key: value}); other keys are refused."""
    given = split_overrides(argv)
    keys = valid_keys()
    overrides = {}
    for key, value in given.items():
        if key in ("run", "output_root"):
            continue
        if not key.startswith("export.") or key not in keys:
            allowed = ", ".join(["run", "output_root", *[k for k in keys if k.startswith("export.")]])
            raise UserError(f"export takes {allowed}; unknown {key!r}")
        overrides[key.split(".", 1)[1]] = check_value(key, value, keys[key])
    return str(given.get("run", "")), str(given.get("output_root", "checkpoints")), overrides


def merged_head(run: FinishedRun) -> tuple[nn.Linear, dict, Optional[dict]]:
    """(the head K -> C to merge, where it came from, the projection behind it or None)."""
    from subdistill.evaluation.reference import run_projection
    from subdistill.gate import validate_command
    from subdistill.training.heads import find_probe_head

    config = run.config
    if run.objective == "subspace":
        head = find_probe_head(config)
        if head is None or head.in_features != run.k:
            raise UserError(f"run {run.name} has no JL-{run.k} probe head to merge; validation makes it: "
                            f"{validate_command(config)}")
        projection = run_projection(run.folder, config)
        origin = {"origin": "jl-probe", "about": f"the teacher's JL-{run.k} probe head (validate), on s(x) unchanged"}
        record = {"k": projection.k, "d": projection.d, "seed": projection.seed, "sha256": projection.sha256}
        return head, origin, record
    if run.own_head is None:
        raise UserError(f"run {run.name} (objective {run.objective}) has no classification head to merge: fitnets "
                        "trains a regressor onto h that is dropped after training; judge it with subdistill evaluate")
    return run.own_head, {"origin": "own", "about": f"the head trained with objective {run.objective}"}, None


def preprocessing(stats: Optional[dict], tokenizer: Any, config: Config) -> dict:
    """What an input must go through before the student sees it, as the run fed it."""
    if stats is not None:
        keep = ("mean", "std", "input_size", "interpolation", "crop_pct")
        record = {key: list(value) if isinstance(value, tuple) else value for key, value in stats.items()}
        record = {key: value for key, value in record.items() if key in keep}
        return {"modality": "image", "dtype": "float32", "layout": "(B, C, H, W)", **record}
    return {"modality": "text", "max_length": config.data.max_length, "truncation": "longest_first",
            "tokenizer": type(tokenizer).__name__, "tokenizer_files": "in this folder"}


def describe(run: FinishedRun, head: nn.Linear, origin: dict, projection: Optional[dict]) -> tuple[dict, Any]:
    """config.json (without the weights' SHA-256, added once they are written), and the tokenizer or None."""
    import subdistill
    from subdistill.pipeline import input_pipeline
    from subdistill.teachers import teacher_fingerprint
    from subdistill.training.baselines import input_teacher

    config = run.config
    teacher_cfg = input_teacher(config)
    stats, collate = input_pipeline(config, teacher_cfg)
    tokenizer = getattr(collate, "tokenizer", None)
    modality = "image" if stats is not None else "text"
    inputs = ["images"] if modality == "image" else list(getattr(run.model, "input_names", TEXT_DEFAULT))
    described = {
        "format": FORMAT,
        "subdistill_version": subdistill.__version__,
        "run": run.name,
        "recipe": config.recipe,
        "git_commit": run.provenance.get("git_commit"),
        "objective": run.objective,
        "architecture": dataclasses.asdict(run.spec),
        "k": run.k,
        "num_classes": head.out_features,
        "modality": modality,
        "inputs": inputs,
        "outputs": {"logits": "(B, C)", "embedding": "(B, K), with return_embedding=True or embed()"},
        "head": origin,
        "projection": projection,
        "teacher": {
            "source": config.teacher.source,
            "name": config.teacher.name,
            "fine_tuned": config.teacher.finetune,
            "fingerprint": teacher_fingerprint(teacher_cfg),
        },
        "preprocessing": preprocessing(stats, tokenizer, config),
    }
    return described, tokenizer


def teacher_size(config: Config) -> Optional[dict]:
    """Parameters and float32 weight megabytes of the teacher's architecture (no hub access needed)."""
    from subdistill.teachers import build_backbone
    from subdistill.training.baselines import input_teacher

    teacher_cfg = input_teacher(config)
    if teacher_cfg.source != "checkpoint":
        teacher_cfg = dataclasses.replace(teacher_cfg, pretrained=False, weights=None)
    try:
        backbone = build_backbone(teacher_cfg)
    except (UserError, OSError) as err:  # e.g. a hub model whose config cannot be fetched here
        return {"parameters": None, "megabytes": None, "why": str(err).splitlines()[0]}
    state = backbone.state_dict()
    return {
        "parameters": sum(p.numel() for p in backbone.parameters()),
        "megabytes": sum(t.numel() * t.element_size() for t in state.values()) / 1e6,
    }


def size_report(folder: Path, student: ExportedStudent, config: Config) -> dict:
    parameters = sum(p.numel() for p in student.parameters())
    files = {path.name: path.stat().st_size for path in sorted(folder.iterdir()) if path.is_file()}
    megabytes = files[MODEL_FILE] / 1e6
    teacher = teacher_size(config)
    report = {"files_bytes": files, "student": {"parameters": parameters, "megabytes": megabytes}, "teacher": teacher}
    if teacher and teacher["parameters"]:
        report["parameter_ratio"] = teacher["parameters"] / parameters
        report["size_ratio"] = teacher["megabytes"] / megabytes
    return report


def write_folder(run: FinishedRun, folder: Path, formats: list[str]) -> dict:
    """Everything of one export into ``folder``; returns the export report."""
    head, origin, projection = merged_head(run)
    described, tokenizer = describe(run, head, origin, projection)
    student = ExportedStudent(run.model.cpu().eval(), head.cpu().eval(), described)

    state = {name: value.detach().cpu().contiguous() for name, value in student.state_dict().items()}
    save_tensors(state, str(folder / MODEL_FILE), metadata={"format": "pt", "k": str(run.k)})
    described["weights_sha256"] = sha256_file(folder / MODEL_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(described, indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))

    # What a user will load must give what the run's student gives, bit for bit.
    reloaded = load_student(folder)
    examples = example_inputs(reloaded)
    report: dict[str, Any] = {"run": run.name, "run_dir": str(run.folder), "formats": formats}
    report["round_trip"] = check_round_trip(student, reloaded, examples)
    if "onnx" in formats:
        report["onnx"] = export_onnx(reloaded, folder, examples)
    if "torchscript" in formats:
        report["torchscript"] = export_torchscript(reloaded, folder, examples)
    report["size"] = size_report(folder, reloaded, run.config)
    report["files"] = sorted({entry.name for entry in folder.iterdir()} | {REPORT_FILE})
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def check_destination(final: Path) -> None:
    """An existing destination is replaced only when it is an earlier export (or empty)."""
    if not final.exists():
        return
    if not final.is_dir():
        raise UserError(f"export destination {final} is a file; pick another export.output")
    present = {entry.name for entry in final.iterdir()}
    if not present:
        return
    # Only what an earlier export wrote (and listed in its report) may be replaced.
    try:
        written = set(json.loads((final / REPORT_FILE).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        written = set()
    if not written or not present <= written:
        others = sorted(present - written)[:3]
        raise UserError(
            f"export destination {final} holds files no export of subdistill wrote ({', '.join(others)}); "
            "pick another export.output or move them"
        )


def remove_stale_staging(final: Path) -> None:
    """Folders left by exports that were killed: their process is gone, so nobody will finish them."""
    for leftover in final.parent.glob(f".{final.name}.partial-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(staging: Path, final: Path) -> None:
    """Rename the finished folder into place; an earlier export is set aside first and removed last."""
    if not final.exists():
        os.replace(staging, final)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    os.replace(final, old)
    try:
        os.replace(staging, final)
    except OSError:
        os.replace(old, final)  # put the earlier export back
        raise
    shutil.rmtree(old)


def export_run(run_dir: Path, overrides: Optional[dict[str, Any]] = None) -> tuple[Path, dict]:
    """Export a run atomically with its config's export section plus ``overrides``; returns (folder, report)."""
    run = open_run(run_dir)
    export = dataclasses.replace(run.config.export, **(overrides or {}))
    formats = list(dict.fromkeys(["safetensors", *export.formats]))  # model.safetensors is always written
    final = Path(export.output).expanduser() if export.output else run.folder / EXPORT_DIR
    check_destination(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(final)
        staging = final.with_name(f".{final.name}.partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as err:
        raise UserError(f"cannot write an export at {final}: {err.strerror or err}") from None
    try:
        report = write_folder(run, staging, formats)
        report["folder"] = str(final)
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        publish(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final, report


def summary(final: Path, report: dict) -> str:
    size, lines = report["size"], [f"export: {final}"]
    student, teacher = size["student"], size["teacher"] or {}
    line = f"  {MODEL_FILE}: {student['megabytes']:.2f} MB, {student['parameters']:,} parameters"
    if teacher.get("parameters"):
        line += (f" (teacher: {teacher['megabytes']:.2f} MB, {teacher['parameters']:,} parameters; "
                 f"{size['parameter_ratio']:.1f}x fewer)")
    lines.append(line)
    for name in ("onnx", "torchscript"):
        if name in report:
            diffs = ", ".join(f"{batch} {diff:.2e}" for batch, diff in report[name]["max_abs_diff"].items())
            lines.append(f"  {report[name]['file']}: max |difference| to PyTorch {diffs} "
                         f"(tolerance {report[name]['tolerance']:g})")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    run, output_root, overrides = parse_arguments(argv)
    final, report = export_run(resolve_run(run, output_root), overrides)
    print(summary(final, report))
