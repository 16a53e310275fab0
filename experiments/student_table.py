"""Mean and standard deviation over seeds of the student comparison, from evaluate's JSON files.

  python experiments/student_table.py RUN/evaluation.json [...] --out table.md

Each file is one seed: a subspace student with its baselines (ce, kd, fitnets) evaluated
side by side. Two accuracies per student: as a classifier (the subspace student through the
teacher's JL head, unchanged; ce and kd through their own heads; fitnets has no head, so its
fresh probe) and a fresh linear probe on s(x). The table ends with the three aims of issue 6,
each marked reached or not.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ORDER = ("subspace", "ce", "kd", "fitnets")
CLASSIFIER = {"subspace": "teacher's JL head", "ce": "own head", "kd": "own head", "fitnets": "fresh probe"}


def classifier_accuracy(student: dict) -> float:
    if student["objective"] == "subspace":
        return student["jl_head_accuracy"]
    if student["own_head_accuracy"] is not None:
        return student["own_head_accuracy"]
    return student["fresh_probe"]["accuracy"]


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation, in percentage points."""
    points = [100 * v for v in values]
    return statistics.mean(points), statistics.stdev(points) if len(points) > 1 else 0.0


def fmt(pair: tuple[float, float], n: int) -> str:
    return f"{pair[0]:.2f} ± {pair[1]:.2f}" if n > 1 else f"{pair[0]:.2f} (one seed)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = [json.loads(f.read_text()) for f in args.files]
    for path, run in zip(args.files, runs):
        if not run.get("students") or "teacher" not in run:
            raise SystemExit(f"{path} is not an evaluation.json of subdistill evaluate (no teacher or students)")
    teacher = runs[0]["teacher"]
    by_objective: dict[str, list[dict]] = {o: [] for o in ORDER}
    for path, run in zip(args.files, runs):
        if run["teacher"]["fingerprint"] != teacher["fingerprint"]:
            raise SystemExit(f"{run['run']} has another teacher than {runs[0]['run']}")
        for student in run["students"]:
            if student.get("objective") not in by_objective:
                raise SystemExit(f"{path}: student objective {student.get('objective')!r} is not one of "
                                 f"{', '.join(ORDER)}")
            by_objective[student["objective"]].append(student)

    jl = teacher["probes"]["jl"]
    lines = [
        f"Students ({runs[0]['students'][0]['student']}, K={runs[0]['k']}) over {len(runs)} seed(s), "
        f"trained on {runs[0]['train_examples']} examples, tested on {runs[0]['test_examples']}; last-epoch weights.",
        "",
        f"Teacher {teacher['name']}: own head {100 * teacher['own_head_accuracy']:.2f}%, "
        f"full-width probe {100 * teacher['probes']['full']['accuracy']:.2f}% (D={teacher['D']}), "
        f"JL-{jl['k']} probe {100 * jl['accuracy']:.2f}%; {teacher['cost']['parameters'] / 1e6:.2f}M parameters.",
        "",
        "| student | n | accuracy as a classifier (%) | read through | fresh probe on s(x) (%) | parameters |",
        "|---|---|---|---|---|---|",
    ]
    summary = {}
    for objective in ORDER:
        students = by_objective[objective]
        if not students:
            continue
        as_classifier = spread([classifier_accuracy(s) for s in students])
        probe = spread([s["fresh_probe"]["accuracy"] for s in students])
        summary[objective] = (as_classifier, probe, students[0]["cost"]["parameters"])
        n = len(students)
        lines.append(f"| {objective} | {n} | {fmt(as_classifier, n)} | {CLASSIFIER[objective]} | "
                     f"{fmt(probe, n)} | {students[0]['cost']['parameters'] / 1e3:.1f}k |")

    if "subspace" in summary:
        (ours, _), (ours_probe, _), params = summary["subspace"][0], summary["subspace"][1], summary["subspace"][2]
        gap = round(100 * jl["accuracy"] - ours, 6)  # no float dust deciding "above" or "below"
        fewer = teacher["cost"]["parameters"] / params
        lines += ["", "Aims of issue 6:", ""]
        where = f"{gap:.2f} points below it" if gap >= 0 else f"{-gap:.2f} points above it"
        lines.append(f"- subspace student within 1 point of the teacher's JL-{jl['k']} probe: {where}, "
                     f"{'reached' if gap <= 1 else 'not reached'}")
        lines.append(f"- at least 10x fewer parameters than the teacher: {fewer:.1f}x, "
                     f"{'reached' if fewer >= 10 else 'not reached'}")
        for objective in ORDER[1:]:
            if objective in summary:
                theirs = summary[objective][0][0]
                verdict = "reached" if ours >= theirs else "not reached"
                lines.append(f"- at or above {objective} (as classifiers, means): {ours:.2f} vs {theirs:.2f}, {verdict}"
                             f" (fresh probes: {ours_probe:.2f} vs {summary[objective][1][0]:.2f})")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
