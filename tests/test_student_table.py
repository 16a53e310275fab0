"""experiments/student_table.py: mean and standard deviation over seeds, and the aims marked honestly."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "student_table.py"


def evaluation(seed: int, ours: float, ce: float) -> dict:
    def student(objective, jl=None, own=None, probe=0.5):
        return {"objective": objective, "student": "fmnist_cnn", "jl_head_accuracy": jl, "own_head_accuracy": own,
                "fresh_probe": {"accuracy": probe}, "cost": {"parameters": 100_000}}

    return {
        "run": f"s{seed}", "k": 32, "train_examples": 1000, "test_examples": 500,
        "teacher": {"name": "t", "fingerprint": "same", "D": 512, "own_head_accuracy": 0.9,
                    "probes": {"full": {"accuracy": 0.9}, "jl": {"k": 32, "accuracy": 0.89}},
                    "cost": {"parameters": 11_000_000}},
        "students": [student("subspace", jl=ours, probe=ours), student("ce", own=ce, probe=ce),
                     student("fitnets", probe=0.7)],
    }


def test_mean_std_and_verdicts(tmp_path):
    files = []
    for seed, (ours, ce) in enumerate([(0.88, 0.86), (0.89, 0.87), (0.90, 0.91)]):
        files.append(tmp_path / f"e{seed}.json")
        files[-1].write_text(json.dumps(evaluation(seed, ours, ce)))
    out = tmp_path / "table.md"
    subprocess.run([sys.executable, str(SCRIPT), *map(str, files), "--out", str(out)], check=True,
                   capture_output=True)
    text = out.read_text()
    assert "| subspace | 3 | 89.00 ± 1.00 | teacher's JL head |" in text
    assert "| ce | 3 | 88.00 ± 2.65 | own head |" in text  # stdev of 86, 87, 91
    assert "| fitnets | 3 | 70.00 ± 0.00 | fresh probe |" in text
    assert "probe: 0.00 points below it, reached" in text  # 89.00 against the JL probe's 89.00
    assert "110.0x, reached" in text
    assert "at or above ce (as classifiers, means): 89.00 vs 88.00, reached" in text


def test_refuses_mixed_teachers(tmp_path):
    a, b = evaluation(0, 0.9, 0.8), evaluation(1, 0.9, 0.8)
    b["teacher"]["fingerprint"] = "other"
    files = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, data in zip(files, (a, b)):
        path.write_text(json.dumps(data))
    result = subprocess.run([sys.executable, str(SCRIPT), *map(str, files), "--out", str(tmp_path / "t.md")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "another teacher" in result.stderr


def test_refuses_files_it_cannot_read_and_marks_one_seed(tmp_path):
    def table(data):
        path = tmp_path / "e.json"
        path.write_text(json.dumps(data))
        return subprocess.run([sys.executable, str(SCRIPT), str(path), "--out", str(tmp_path / "t.md")],
                              capture_output=True, text=True)

    no_students = {k: v for k, v in evaluation(0, 0.9, 0.8).items() if k != "students"}
    assert "no teacher or students" in table(no_students).stderr
    odd = evaluation(0, 0.9, 0.8)
    odd["students"][1]["objective"] = "crd"
    assert "student objective 'crd' is not one of" in table(odd).stderr
    one = table(evaluation(0, 0.9, 0.8))
    assert one.returncode == 0 and "| subspace | 1 | 90.00 (one seed) |" in (tmp_path / "t.md").read_text()
