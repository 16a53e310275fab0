"""`subdistill validate` end to end, the validity definition, and the gate in front of distillation."""

import json
import math

import pytest

import numpy as np
import torch

from subdistill import gate, validate
from subdistill.errors import UserError
from subdistill.geometry import distance_ratios, pairwise_ratios, seed_spread
from subdistill.projection import JLProjection
from subdistill.recipes import resolve
from subdistill.teachers.frozen import Teacher

TINY = ["recipe=fmnist_k32", "tiny=true", "teacher.finetune=false"]


def test_validity_definition():
    full = {"accuracy": 0.90, "loss": 0.30}
    close = {"accuracy": 0.895, "loss": 0.31}
    verdict = gate.validity(full, close, 0.01)
    assert verdict["accuracy_gap"] == pytest.approx(0.005)
    assert verdict["loss_gap"] == pytest.approx(math.exp(-0.30) - math.exp(-0.31))
    assert verdict["valid"]
    assert not gate.validity(full, {"accuracy": 0.885, "loss": 0.30}, 0.01)["valid"]  # 1.5 points lower
    assert not gate.validity(full, {"accuracy": 0.90, "loss": 0.35}, 0.01)["valid"]  # 0.034 lower exp(-loss)
    assert gate.validity(full, {"accuracy": 0.95, "loss": 0.10}, 0.0)["valid"]  # better than full width


def test_geometry_ratios_and_seed_spread():
    points = torch.randn(40, 16, generator=torch.Generator().manual_seed(0))
    points[1] = points[0]  # a duplicate pair has no ratio
    ratios = pairwise_ratios(points, 2 * points)
    assert ratios.numel() == 40 * 39 // 2 - 1 and torch.allclose(ratios, torch.full_like(ratios, 2.0))
    i, j = 3, 17
    expected = np.linalg.norm(points[i, :4] - points[j, :4]) / np.linalg.norm(points[i] - points[j])
    assert float(pairwise_ratios(points, points[:, :4])[_pair_index(40, i, j) - 1]) == pytest.approx(expected)

    wide = torch.randn(300, 256, generator=torch.Generator().manual_seed(1))
    stats = distance_ratios(wide, JLProjection(128, 256, 42), sample=200)
    assert stats["pairs"] == 200 * 199 // 2
    assert 0.95 < stats["mean"] < 1.05 and 0.75 < stats["p1"] < 1.0 < stats["p99"] < 1.25

    spread = seed_spread({42: 0.90, 0: 0.88, 1: 0.91})
    assert spread["mean"] == pytest.approx(0.8966667, abs=1e-6)
    assert spread["std"] == pytest.approx(float(np.std([0.90, 0.88, 0.91], ddof=1)))
    assert spread["range"] == pytest.approx(0.03)


def _pair_index(n: int, i: int, j: int) -> int:
    """Position of pair (i, j), i < j, in row-major upper-triangle order."""
    return i * n - i * (i + 1) // 2 + (j - i - 1)


def test_gate_stops_distillation_until_k_is_validated(tmp_path):
    config = resolve([*TINY, f"output_root={tmp_path}"])
    with pytest.raises(UserError) as refusal:
        gate.check_gate(config)
    message = str(refusal.value)
    assert "run first: subdistill validate recipe=fmnist_k32 tiny=true " in message
    assert f" output_root={tmp_path}" in message and " teacher.finetune=false" in message
    assert "train." not in message  # only settings that change what validate measures are repeated

    # Another K passing does not validate the recipe's K.
    full = {"accuracy": 0.9, "loss": 0.3}
    gate.write_record(config, 64, full, {"accuracy": 0.9, "loss": 0.3}, tmp_path / "report.md")
    with pytest.raises(UserError, match="not validated"):
        gate.check_gate(config)

    # A failing K=32 record stops it with the numbers; a looser epsilon judges the same record again.
    gate.write_record(config, 32, full, {"accuracy": 0.85, "loss": 0.45}, tmp_path / "report.md")
    with pytest.raises(UserError, match="failed validation"):
        gate.check_gate(config)
    gate.check_gate(resolve([*TINY, f"output_root={tmp_path}", "validate.epsilon=0.2"]))

    # A passing record lets distillation through; a different projection seed is not covered by it.
    gate.write_record(config, 32, full, {"accuracy": 0.895, "loss": 0.305}, tmp_path / "report.md")
    gate.check_gate(config)
    assert gate.passed(config)
    with pytest.raises(UserError, match="projection.seed=7"):
        gate.check_gate(resolve([*TINY, f"output_root={tmp_path}", "projection.seed=7"]))


def test_gate_off_and_fine_tuned_teacher_missing(tmp_path):
    gate.check_gate(resolve([*TINY, f"output_root={tmp_path}", "validate.required=false"]))
    with pytest.raises(UserError, match="train.stage=finetune"):
        gate.check_gate(resolve(["recipe=fmnist_k32", "tiny=true", f"output_root={tmp_path}"]))


def test_validate_command_end_to_end(tmp_path, capsys, monkeypatch):
    argv = [*TINY, f"output_root={tmp_path}", "run=check"]
    validate.main(argv)
    out = capsys.readouterr().out
    assert "Table 2 analogue" in out and "Smallest valid K" in out

    run_dir = tmp_path / "check"
    for name in ("report.md", "report.json", "config.yaml", "probes.safetensors", "tsne.png", "accuracy_vs_k.png"):
        assert (run_dir / name).is_file(), name
    report = json.loads((run_dir / "report.json").read_text())
    assert report["ks"] == [256, 128, 64, 32] and report["D"] == 512
    expected = {"full"} | {f"{m}-{k}" for m in ("jl", "pca", "learned") for k in (256, 128, 64, 32)}
    assert expected <= set(report["heads"])
    assert set(report["geometry"]) == {"256", "128", "64", "32"}
    for head in report["heads"].values():
        assert 0.0 <= head["accuracy"] <= 1.0 and math.isfinite(head["loss"])

    # The gate agrees with the report, and a second run reuses the cached features.
    config = resolve(argv)
    assert gate.passed(config) == report["validity"]["32"]["valid"]
    monkeypatch.setattr(Teacher, "forward", lambda self, inputs: pytest.fail("teacher ran again"))
    validate.main([*TINY, f"output_root={tmp_path}", "run=again"])
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["heads"] == report["heads"]  # same features, seeds and batches: the same probes
