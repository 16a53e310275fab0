"""The stages and options of training, each run in this process on a tiny recipe:
fine-tuning then cached distillation, the frozen teacher, the probe-head terms,
mixed precision, text students, and the script's own entry (signals, errors)."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from train_helpers import fmnist_args, launch, launch_command, launch_env, run_inline

from subdistill import gate, teachers
from subdistill.errors import UserError
from subdistill.recipes import resolve
from subdistill.training import distill
from subdistill.training.checkpoints import list_states, read_trainer


def test_finetune_writes_a_teacher_that_cached_distillation_uses_without_loading_it(tmp_path, monkeypatch):
    from subdistill.features import load_or_extract
    from subdistill.store import effective_teacher, teacher_dir

    args = ["recipe=fmnist_k32", "tiny=true", "validate.required=false", "data.augment=false"]
    args.append(f"output_root={tmp_path}")
    config = resolve(args)
    with pytest.raises(UserError, match="train.stage=finetune") as missing:
        effective_teacher(config)
    # The command it gives makes exactly the teacher that is missing: the data and output settings kept.
    hint = str(missing.value).split("make it first with: accelerate launch subdistill/train.py ")[1]
    assert teacher_dir(resolve(shlex.split(hint))) == teacher_dir(config)
    assert "validate.required" not in hint  # only what decides the teacher

    tuned = run_inline(args + ["train.stage=finetune"])
    assert tuned["run_dir"] == str(teacher_dir(config)) and 0 <= tuned["eval"]["accuracy"] <= 1
    teacher = teachers.load_teacher(effective_teacher(config))
    assert teacher.has_head and teacher.feature_dim == 512
    assert run_inline(args + ["train.stage=finetune"])["skipped"]  # a second launch reuses it

    # Cached targets: the cache is made once, then distillation never loads the teacher.
    for split in ("train", "test"):
        load_or_extract(config, split, progress=False)
    monkeypatch.setattr(teachers, "load_teacher", lambda cfg: pytest.fail("the teacher was loaded"))
    summary = run_inline(args + ["run=cached"])
    assert summary["targets"] == "cached" and summary["eval"]["examples"] == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cached", "features", "teachers"]


def test_teacher_stays_frozen_in_eval_mode_during_distillation(tmp_path, monkeypatch):
    seen: dict = {}

    class Watched(distill.DistillTask):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["teacher"] = teacher = distill.teacher_of(self)
            seen["before"] = {k: v.clone() for k, v in teacher.state_dict().items()}
            seen["modes"] = []
            for module in teacher.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.register_forward_pre_hook(lambda m, _: seen["modes"].append(m.training))

    monkeypatch.setattr(distill, "DistillTask", Watched)
    run_inline(fmnist_args(tmp_path, "train.max_steps=3", "train.eval_every=2"))

    teacher = seen["teacher"]
    assert type(teacher).__name__ == "Teacher"  # never wrapped for data parallelism
    assert seen["modes"] and not any(seen["modes"])  # every batch-norm call in eval mode
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert {p.device.type for p in teacher.parameters()} == {"cpu"}
    after = teacher.state_dict()
    assert all(torch.equal(seen["before"][key], after[key]) for key in after)  # running stats included


def _write_validation(config, tmp_path: Path) -> torch.nn.Linear:
    """What `subdistill validate` leaves behind for K: a record for the gate and the trained heads."""
    from subdistill.probes import ProbeBank, sweep_specs
    from subdistill.validate import _save_bank

    k = config.projection.k
    bank = ProbeBank(512, 10, sweep_specs(512, [k], config.projection.seed, pca=False))
    report = tmp_path / "validation" / "report.md"
    report.parent.mkdir()
    _save_bank(bank, report.parent / "probes.safetensors")
    score = {"accuracy": 0.9, "loss": 0.3}
    gate.write_record(config, k, score, score, report)
    return bank.heads[f"jl-{k}"]


def test_probe_head_terms_and_accuracy_use_the_validated_head(tmp_path):
    from subdistill.training.heads import find_probe_head

    terms = ("run=extras", "train.ce_weight=0.5", "train.kd_weight=0.5", "train.max_steps=2")
    args = fmnist_args(tmp_path, *terms)
    with pytest.raises(UserError, match="probe head"):
        run_inline(args)

    head = _write_validation(resolve(args), tmp_path)
    found = find_probe_head(resolve(args))
    assert torch.equal(found.weight, head.weight) and not found.weight.requires_grad

    summary = run_inline(fmnist_args(tmp_path, *terms, "validate.required=true"))  # the record opens the gate too
    records = [json.loads(line) for line in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    first = records[0]
    combined = first["train/subspace"] + 0.5 * first["train/ce"] + 0.5 * first["train/kd"]
    assert first["train/loss"] == pytest.approx(combined)
    assert 0 <= summary["eval"]["accuracy"] <= 1


def test_gate_refuses_an_unvalidated_k(tmp_path):
    with pytest.raises(UserError, match="not validated"):
        run_inline(fmnist_args(tmp_path, "validate.required=true"))
    assert not any(tmp_path.iterdir())  # a refused launch leaves no run folder


@pytest.mark.parametrize("asked, effective", [("bf16", "bf16"), ("fp16", "no")])
def test_mixed_precision_in_effect_is_recorded(tmp_path, capsys, asked, effective):
    summary = run_inline(fmnist_args(tmp_path, f"train.mixed_precision={asked}", "train.max_steps=2"))
    assert summary["precision"] == {"requested": asked, "effective": effective}
    assert torch.isfinite(torch.tensor(summary["eval"]["loss"]))
    out = capsys.readouterr().out
    assert (f"mixed precision {asked} asked, no in effect" in out) == (asked != effective)


@pytest.mark.parametrize("kind", ["teacher_layers", "hf_encoder"])
def test_text_students_distil_from_a_text_teacher(tmp_path, kind):
    args = ["recipe=wordnet_minilm_k32", "tiny=true", "teacher.finetune=false", "validate.required=false",
            "train.targets=online", "data.limit_train=16", "data.limit_test=8", f"student.kind={kind}",
            f"output_root={tmp_path}"]
    summary = run_inline(args)
    assert summary["eval"]["examples"] == 8 and summary["student_parameters"] > 0
    spec = json.loads((Path(summary["run_dir"]) / "student.json").read_text())
    assert spec["student"]["kind"] == kind and spec["encoder_config"]["num_hidden_layers"] == 1


def test_sigterm_saves_a_state_then_exits(tmp_path):
    args = fmnist_args(tmp_path, "run=signalled", "train.max_steps=100000", "train.epochs=10000",
                       "train.log_every=1", "train.eval_every=0", "train.save_every=0")
    proc = subprocess.Popen(launch_command(args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=launch_env())
    try:
        for line in proc.stdout:
            if line.startswith("step 2/"):
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, rest
    assert "interrupted (signal 15) at step" in rest
    (step, state), = list_states(tmp_path / "signalled")
    assert step >= 2 and read_trainer(state)["step"] == step
    assert not (tmp_path / "signalled" / "student.safetensors").exists()


def test_script_reports_user_errors_in_one_line():
    proc = launch(["recipe=fmnist_k32", "train.stage=teach"])
    assert proc.returncode == 2
    expected = "subdistill: error: train.stage must be one of distill, finetune, got 'teach'"
    assert proc.stderr.strip().splitlines() == [expected]
