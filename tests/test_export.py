"""`subdistill export`: a self-contained folder with the probe head merged, ONNX and TorchScript
copies checked against PyTorch, strict loading, and refusals that leave what exists whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_helpers import tiny_args, tiny_runs
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from train_helpers import FMNIST_R_SHA256, launch, run_inline

import subdistill
from subdistill import export
from subdistill.errors import UserError
from subdistill.exported import sha256_file
from subdistill.training.students import load_student as load_run_student


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tiny_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def exported(runs):
    final, report = export.export_run(runs["subspace"])  # every format, into <run>/export
    return final, report


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_export_maps_inputs_to_logits_through_the_teachers_jl_head(runs, exported):
    final, report = exported
    assert final == runs["subspace"] / "export"
    assert sorted(p.name for p in final.iterdir()) == [
        "config.json", "export_report.json", "model.onnx", "model.pt", "model.safetensors"]
    # Every file is as readable as the others (safetensors on its own writes owner-only files).
    assert len({(p.stat().st_mode & 0o777) for p in final.iterdir()}) == 1
    config = json.loads((final / "config.json").read_text())
    assert config["projection"] == {"k": 32, "d": 512, "seed": 42, "sha256": FMNIST_R_SHA256}
    assert config["head"]["origin"] == "jl-probe" and config["num_classes"] == 10 and config["k"] == 32
    assert config["preprocessing"]["mean"] == [0.2860] and config["preprocessing"]["std"] == [0.3530]
    assert config["preprocessing"]["input_size"] == [1, 28, 28]
    assert config["teacher"]["fingerprint"].startswith("timm:resnet18:random-init")
    assert config["weights_sha256"] == sha256_file(final / "model.safetensors")

    # Loaded with neither teacher nor recipe, strictly: the file holds exactly the model's keys.
    model = subdistill.load_student(final)
    assert set(load_file(str(final / "model.safetensors"))) == set(model.state_dict())

    # Against the pieces it was made of: the run's student and validation's JL-32 head.
    body, _ = load_run_student(runs["subspace"])
    with safe_open(str(runs["validation"] / "probes.safetensors"), framework="pt") as probes:
        weight, bias = probes.get_tensor("heads.jl-32.weight"), probes.get_tensor("heads.jl-32.bias")
    images = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        logits, embedding = model(images, return_embedding=True)
        assert torch.equal(embedding, body(images)) and torch.equal(model.embed(images), embedding)
        assert torch.equal(logits, F.linear(body(images), weight, bias)) and torch.equal(model(images), logits)

    # ONNX: a free batch axis, within 1e-4 of PyTorch at batch 1 and 3 (export's own check) and at 5 (here).
    import onnxruntime

    assert set(report["onnx"]["max_abs_diff"]) == {"batch_1", "batch_3"}
    assert max(report["onnx"]["max_abs_diff"].values()) < 1e-4
    session = onnxruntime.InferenceSession(str(final / "model.onnx"), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str) and session.get_inputs()[0].shape[1:] == [1, 28, 28]
    onnx_logits, onnx_embedding = session.run(None, {"images": images.numpy()})
    assert np.abs(onnx_logits - logits.numpy()).max() < 1e-4
    assert np.abs(onnx_embedding - embedding.numpy()).max() < 1e-4

    # TorchScript gives the same pair.
    scripted = torch.jit.load(str(final / "model.pt"))
    script_logits, _ = scripted(images)
    assert (script_logits - logits).abs().max() < 1e-4 and max(report["torchscript"]["max_abs_diff"].values()) < 1e-4

    # Size against the teacher (timm resnet18, 1 channel, 10 classes).
    size = report["size"]
    assert size["student"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert size["teacher"]["parameters"] == 11_175_370
    assert size["parameter_ratio"] == pytest.approx(11_175_370 / size["student"]["parameters"])
    assert size["files_bytes"]["model.safetensors"] == (final / "model.safetensors").stat().st_size


def test_exported_model_refuses_wrong_inputs(exported):
    model = subdistill.load_student(exported[0])
    for wrong, named in (
        (torch.randn(2, 28, 28), r"shape \(2, 28, 28\)"),
        (torch.randn(2, 3, 28, 28), r"shape \(2, 3, 28, 28\)"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "integer pixels must be scaled"),
        (torch.randn(2, 1, 28, 28, dtype=torch.float64), "float64 tensor"),
        ([[0.0] * 28] * 28, "got a list"),
    ):
        with pytest.raises(UserError, match=r"takes float32 images of shape \(B, 1, 28, 28\).*" + named):
            model(wrong)


def test_failed_exports_and_tampered_folders_leave_what_exists_whole(runs, exported, tmp_path):
    shipped = tmp_path / "shipped"
    export.export_run(runs["ce"], {"formats": ["safetensors"], "output": str(shipped)})
    assert json.loads((shipped / "config.json").read_text())["head"]["origin"] == "own"
    before = folder_bytes(shipped)

    def refused(run_dir: Path, match: str) -> None:
        with pytest.raises(UserError, match=match):
            export.export_run(run_dir, {"output": str(shipped)})
        assert folder_bytes(shipped) == before  # the earlier export is untouched
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no half-made folder

    # A student file that does not fit its spec, and an R that is not the recorded one.
    mismatched = tmp_path / "mismatched"
    shutil.copytree(runs["ce"], mismatched)
    spec = json.loads((mismatched / "student.json").read_text())
    spec["student"]["width"] = 16
    (mismatched / "student.json").write_text(json.dumps(spec))
    refused(mismatched, "does not fit the model: .*mis-shaped")
    damaged = tmp_path / "damaged"
    shutil.copytree(runs["subspace"], damaged, ignore=shutil.ignore_patterns("export"))
    raw = bytearray((damaged / "projection.safetensors").read_bytes())
    raw[-4:] = b"\x00\x00\x80\x7f"  # the last entry of R becomes +inf
    (damaged / "projection.safetensors").write_bytes(bytes(raw))
    refused(damaged, "projection file .* is damaged")

    # No finished student, and a baseline with nothing to merge.
    run_inline(tiny_args(tmp_path, "run=paused", "train.stop_at=1"))
    refused(tmp_path / "paused", "holds no finished student")
    refused(runs["fitnets"], "has no classification head to merge")
    with pytest.raises(UserError, match="holds files no export of subdistill wrote"):
        export.export_run(runs["ce"], {"output": str(tmp_path)})

    # A folder that merely has a config.json (a Hugging Face model, say) is not an earlier export.
    foreign = tmp_path / "hf_model"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"model_type": "bert"}')
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="precious.txt"):
        export.export_run(runs["ce"], {"output": str(foreign)})
    assert (foreign / "precious.txt").read_text() == "keep me"

    # A student spec of an unknown kind, and weights swapped in from another run.
    unknown = tmp_path / "unknown"
    shutil.copytree(runs["ce"], unknown)
    spec = json.loads((unknown / "student.json").read_text())
    spec["student"]["kind"] = "bogus"
    (unknown / "student.json").write_text(json.dumps(spec))
    refused(unknown, "kind 'bogus'")
    swapped = tmp_path / "swapped"
    shutil.copytree(runs["subspace"], swapped, ignore=shutil.ignore_patterns("export"))
    shutil.copy(runs["ce"] / "student.safetensors", swapped / "student.safetensors")
    refused(swapped, "is not the file student.json was written with")

    # Loading checks the files against config.json, then every key.
    with pytest.raises(UserError, match="export it first"):
        subdistill.load_student(runs["ce"])
    tampered = tmp_path / "tampered"
    shutil.copytree(exported[0], tampered)
    state = load_file(str(tampered / "model.safetensors"))
    save_file({**state, "head.extra": torch.zeros(1)}, str(tampered / "model.safetensors"))
    with pytest.raises(UserError, match="does not match config.json"):
        subdistill.load_student(tampered)
    config = json.loads((tampered / "config.json").read_text())
    config["weights_sha256"] = sha256_file(tampered / "model.safetensors")
    (tampered / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=r"unexpected keys \['head.extra'\]"):
        subdistill.load_student(tampered)
    config["projection"]["seed"] = 7
    (tampered / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="projection fingerprint .* is not the R drawn with K=32, D=512, seed=7"):
        subdistill.load_student(tampered)


def test_export_of_a_two_process_run_loads_strictly(runs):
    proc = launch(tiny_args(runs["root"], "run=two-process", "train.batch_size=4"), processes=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((runs["root"] / "two-process" / "summary.json").read_text())
    assert summary["num_processes"] == 2, "the launch should have started two processes"

    final, report = export.export_run(runs["root"] / "two-process", {"formats": ["safetensors"]})
    assert report["formats"] == ["safetensors"] and "onnx" not in report
    model = subdistill.load_student(final)  # raises on any missing or unexpected key
    keys = set(load_file(str(final / "model.safetensors")))
    assert keys == set(model.state_dict()) and not any(key.startswith(("module.", "body.module.")) for key in keys)
    body, _ = load_run_student(runs["root"] / "two-process")
    assert all(torch.equal(model.body.state_dict()[key], value) for key, value in body.state_dict().items())


def test_text_student_exports_with_its_tokenizer_and_onnx(tmp_path, monkeypatch):
    from subdistill import teachers

    # A ce baseline needs neither the teacher nor a validation (validate.required stays true here).
    args = ["recipe=wordnet_minilm_k32", "tiny=true", "teacher.finetune=false", "data.limit_train=16",
            "data.limit_test=8", "student.kind=text_cnn", "train.objective=ce", "run=text", f"output_root={tmp_path}"]
    with monkeypatch.context() as patched:
        patched.setattr(teachers, "load_teacher", lambda cfg: pytest.fail("ce loaded the teacher"))
        summary = run_inline(args)
    assert summary["targets"] == "none" and not (tmp_path / "validations").exists()
    final, report = export.export_run(tmp_path / "text", {"formats": ["safetensors", "onnx"]})
    assert "model.onnx" in report["size"]["files_bytes"] and "model.pt" not in report["size"]["files_bytes"]
    assert report["onnx"]["dynamic_axes"]["input_ids"] == ["batch", "tokens"]
    assert max(report["onnx"]["max_abs_diff"].values()) < 1e-4

    model = subdistill.load_student(final)
    assert model.config["preprocessing"]["max_length"] == 32
    batch = dict(model.tokenizer()(["a large dog", "the oak table near the old river"], padding=True,
                                   return_tensors="pt"))
    logits, embedding = model(batch, return_embedding=True)
    assert logits.shape == (2, 26) and embedding.shape == (2, 16)
    with pytest.raises(UserError, match="input_ids is a float32 tensor"):
        model({**batch, "input_ids": batch["input_ids"].float()})
    with pytest.raises(UserError, match="token ids must be in"):
        model({**batch, "input_ids": batch["input_ids"] + 10**6})
    with pytest.raises(UserError, match="takes a dict of int64"):
        model(batch["input_ids"])


def test_export_command_line(runs, tmp_path, capsys):
    from subdistill.cli import main

    out = tmp_path / "ce-export"
    main(["export", "run=ce", f"output_root={runs['root']}", "export.formats=[safetensors]", f"export.output={out}"])
    printed = capsys.readouterr().out
    assert f"export: {out}" in printed and "11,175,370 parameters" in printed
    assert json.loads((out / "export_report.json").read_text())["folder"] == str(out)
    for bad, message in (
        ("formats=[onnx]", "export takes run, output_root, export.formats, export.output; unknown 'formats'"),
        ("export.formats=[onxx]", "export.formats must be one of safetensors, onnx, torchscript"),
    ):
        with pytest.raises(SystemExit) as stopped:
            main(["export", "run=ce", f"output_root={runs['root']}", bad])
        assert stopped.value.code == 2 and message in capsys.readouterr().err
