"""The README's main command, end to end on the tiny form of the embedded default, then again reusing everything."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_demo(output_root: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "subdistill", "demo", "tiny=true", f"output_root={output_root}"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_demo_runs_the_whole_flow_then_reuses_it(tmp_path):
    first = run_demo(tmp_path)
    run_dir = tmp_path / "fmnist_demo-demo"
    expected = ["student.safetensors", "evaluation.md", "evaluation.json"]
    for name in [*expected, "export/model.safetensors", "export/model.onnx"]:
        assert (run_dir / name).is_file(), name
    for objective in ("ce", "kd", "fitnets"):
        assert (tmp_path / f"fmnist_demo-demo-{objective}" / "student.safetensors").is_file()
    assert "| student `fmnist_demo-demo` (subspace)" in first
    assert "baseline `fmnist_demo-demo-kd` (kd)" in first
    # It ends with the one summary table: every accuracy, sizes, latency and where the export lies.
    tail = first[first.index("== summary"):]
    for label in ("teacher, full-width probe (D=", "teacher, JL-32 probe", "student (subspace) |", "baseline ce |",
                  "baseline kd |", "baseline fitnets |", f"exported student: {run_dir / 'export'}", "model.onnx"):
        assert label in tail, label
    assert (run_dir / "demo_summary.md").read_text() in tail

    # Second run: the teacher, the validation and the four students are found, not made again.
    states = sorted(p.name for p in (run_dir / "state").iterdir())
    second = run_demo(tmp_path)
    assert "nothing to do" in second and "validation of K=32 found" in second
    assert second.count("finished student found") == 4  # the subspace student and the three baselines
    assert "run folder" not in second
    assert sorted(p.name for p in (run_dir / "state").iterdir()) == states
