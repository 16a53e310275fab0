"""`subdistill evaluate run=NAME_OR_PATH [baselines=[RUN,...]] [output_root=DIR] [repeats=N] [threads=N]`

Judges a trained student on the test split against the probe baselines, with the usual
distillation baselines (runs of the same student with train.objective=ce, kd or
fitnets) in the same table:

  - the teacher's JL-K probe head applied to s(x) unchanged, and a fresh linear probe on
    s(x) trained with the teacher's probe settings;
  - target MSE and cosine similarity of s(x) to t = R h / sqrt(K);
  - the teacher's full-width, JL-K, PCA-K and learned-K probe accuracies (from validate);
  - parameters, FLOPs per example, CPU latency (batch 1) and throughput (batch 64) of
    the teacher and of each student.

A run is a folder under output_root (default checkpoints) named by run=NAME, or any
path; repeats (default 10) timed passes give each median, with ``threads`` CPU threads
(default 0: torch's own setting). Writes evaluation.md and evaluation.json into the
student's run folder and prints the table. Reads what earlier steps made: the runs, the
fine-tuned teacher, the feature cache (extracting the test split if it is missing) and
the validation record.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from pathlib import Path
from typing import Any

import torch

from subdistill.errors import UserError
from subdistill.evaluation.cost import LATENCY_BATCH, THROUGHPUT_BATCH, Classifier, measure
from subdistill.evaluation.embed import EvalData, eval_data, embed, example_inputs
from subdistill.evaluation.fresh_probe import fresh_probe
from subdistill.evaluation.reference import (
    accuracy,
    run_projection,
    target_agreement,
    teacher_probes,
    validation_report,
)
from subdistill.evaluation.runs import FinishedRun, open_run, resolve_run
from subdistill.evaluation.table import markdown
from subdistill.recipes import parse_value, split_overrides

ARGUMENTS = {"run": "", "baselines": [], "output_root": "checkpoints", "repeats": 10, "threads": 0}


def parse_arguments(argv: list[str]) -> dict[str, Any]:
    """run=..., baselines=[a,b] (or one name), output_root=..., repeats=N, threads=N; anything else is refused."""
    given = split_overrides(argv)
    for key in given:
        if key not in ARGUMENTS:
            close = difflib.get_close_matches(key, list(ARGUMENTS), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UserError(f"evaluate takes {', '.join(ARGUMENTS)}; unknown {key!r} ({hint}for example run=NAME)")
    args = dict(ARGUMENTS)
    args["run"] = str(given.get("run", ""))
    args["output_root"] = str(given.get("output_root", args["output_root"]))
    if "baselines" in given:
        value = parse_value(given["baselines"])
        names = value if isinstance(value, list) else [] if value is None else [value]
        args["baselines"] = [str(name) for name in names]
        repeated = sorted({name for name in args["baselines"] if args["baselines"].count(name) > 1})
        if repeated:
            raise UserError(f"baselines names {', '.join(repeated)} more than once; list each run once")
    for key, least in (("repeats", 1), ("threads", 0)):
        if key in given:
            value = parse_value(given[key])
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise UserError(f"{key} must be a whole number of at least {least}, got {str(given[key])!r}")
            args[key] = value
    return args


def cost_inputs(data: EvalData) -> tuple[Any, Any]:
    """Real test inputs holding 1 and 64 examples, for the timings."""
    test = data.splits["test"]
    return example_inputs(test, data.collate, LATENCY_BATCH), example_inputs(test, data.collate, THROUGHPUT_BATCH)


def judge_teacher(main: FinishedRun, data: EvalData, timing: dict, notes: list[str]) -> dict:
    """The teacher's own head, its probes from the validation report, and its costs."""
    from subdistill.data import num_classes
    from subdistill.features import load_or_extract
    from subdistill.gate import validate_command
    from subdistill.store import effective_teacher
    from subdistill.teachers import load_teacher, teacher_fingerprint

    config = main.config
    teacher_cfg = effective_teacher(config)
    teacher = load_teacher(teacher_cfg)
    test_h, test_y = load_or_extract(config, "test", progress=False)  # (N, D), (N,)
    backbone = teacher.backbone
    # The head is linear: on the cached test features (eval transform) it scores the teacher as a classifier.
    own_head = None
    if teacher.has_head:
        with torch.inference_mode():
            own_head = accuracy(backbone.head(test_h), test_y)

    report, report_file = validation_report(config)
    if report is None:
        notes.append(f"no validation of this teacher at K={main.k} was found, so the teacher's probe accuracies and "
                     f"its JL head are missing; make them with: {validate_command(config)}")
    one, batch = cost_inputs(data)
    return {
        "name": f"{config.teacher.source}:{config.teacher.name}" + (" (fine-tuned)" if config.teacher.finetune else ""),
        "fingerprint": teacher_fingerprint(teacher_cfg),
        "D": int(test_h.shape[1]),
        "classes": num_classes(config.data),
        "own_head_accuracy": own_head,
        "probes": teacher_probes(report, main.k),
        "validation_report": str(report_file) if report_file else None,
        "cost": measure(Classifier(backbone, backbone.head), one, batch, **timing),
    }


def judge_student(run: FinishedRun, timing: dict, notes: list[str]) -> dict:
    """A run's student read through its head(s) and a fresh probe, its agreement with t, and its costs."""
    from subdistill.data import num_classes
    from subdistill.features import load_or_extract
    from subdistill.probes import default_device
    from subdistill.training.heads import find_probe_head

    config = run.config
    data = eval_data(config)
    model = run.model.to(default_device())
    train_s, train_y = embed(model, data.splits["train"], data.collate)  # (N, K), (N,)
    test_s, test_y = embed(model, data.splits["test"], data.collate)
    result: dict[str, Any] = {
        "run": run.name,
        "run_dir": str(run.folder),
        "objective": run.objective,
        "k": run.k,
        "student": run.spec.kind,
        "train_examples": len(train_y),
        "test_examples": len(test_y),
        "jl_head_accuracy": None,
        "own_head_accuracy": None,
        "targets": None,
    }
    classes = num_classes(config.data)
    result["fresh_probe"] = fresh_probe(train_s, train_y, test_s, test_y, classes, config.probe, config.seed)

    head = run.own_head
    if run.objective == "subspace":
        test_h, cached_y = load_or_extract(config, "test", progress=False)  # (N, D), (N,)
        if not torch.equal(cached_y, test_y):
            raise UserError(f"the feature cache and the test split of {run.name} disagree on labels; extract it again")
        targets = run_projection(run.folder, config, test_h.shape[1])(test_h)  # (N, K)
        result["targets"] = target_agreement(test_s, targets)
        head = find_probe_head(config)
        if head is not None and head.in_features == run.k:
            with torch.inference_mode():
                result["jl_head_accuracy"] = accuracy(head(test_s), test_y)
        else:
            head = None
            notes.append(f"{run.name}: no JL-{run.k} probe head of its teacher was found (run validate first)")
    elif head is not None:
        with torch.inference_mode():
            result["own_head_accuracy"] = accuracy(head(test_s), test_y)

    one, batch = cost_inputs(data)
    result["cost"] = measure(Classifier(model, head), one, batch, **timing)
    return result


def check_comparable(main: FinishedRun, other: FinishedRun, notes: list[str]) -> None:
    """Baselines must be scored on the same test examples; other differences are noted."""
    from subdistill.data import dataset_fingerprint

    mine, theirs = main.config, other.config
    if dataset_fingerprint(mine.data, "test", False) != dataset_fingerprint(theirs.data, "test", False):
        raise UserError(f"baseline {other.name} was scored on another test split than {main.name} (data section "
                        f"differs); evaluate runs of the same recipe and data together")
    for what, a, b in (
        ("student", mine.student, theirs.student),
        ("K", main.k, other.k),
        ("training examples", mine.data.limit_train, theirs.data.limit_train),
        ("epochs, max_steps", (mine.train.epochs, mine.train.max_steps), (theirs.train.epochs, theirs.train.max_steps)),
    ):
        if a != b:
            notes.append(f"{other.name} differs from {main.name} in {what}: {b} vs {a}")


def evaluate_run(run_dir: Path, baseline_dirs: list[Path], repeats: int = 10, threads: int = 0) -> dict:
    """Evaluate a run and its baselines; returns the evaluation (also written into the run folder)."""
    main = open_run(run_dir)
    others = [open_run(folder) for folder in baseline_dirs]
    notes: list[str] = []
    for other in others:
        check_comparable(main, other, notes)

    config, timing = main.config, {"repeats": repeats, "threads": threads}
    students = [judge_student(run, timing, notes) for run in [main, *others]]
    teacher = judge_teacher(main, eval_data(config, ("test",)), timing, notes)
    evaluation = {
        "run": main.name,
        "run_dir": str(main.folder),
        "recipe": config.recipe,
        "k": main.k,
        "test_examples": students[0]["test_examples"],
        "train_examples": students[0]["train_examples"],
        "teacher": teacher,
        "students": students,
        "probe": dataclasses.asdict(config.probe),
        "timing": {"device": "cpu", "threads": teacher["cost"]["threads"], "repeats": repeats},
        "notes": notes,
    }
    write_results(main.folder, evaluation)
    return evaluation


def write_results(folder: Path, evaluation: dict) -> None:
    """evaluation.json and evaluation.md, each written beside its final name and then renamed."""
    texts = {"evaluation.json": json.dumps(evaluation, indent=2) + "\n", "evaluation.md": markdown(evaluation)}
    for name, text in texts.items():
        partial = folder / f".{name}.partial"
        partial.write_text(text)
        os.replace(partial, folder / name)


def main(argv: list[str]) -> None:
    args = parse_arguments(argv)
    run_dir = resolve_run(args["run"], args["output_root"])
    baseline_dirs = [resolve_run(name, args["output_root"]) for name in args["baselines"]]
    if run_dir.resolve() in [folder.resolve() for folder in baseline_dirs]:
        raise UserError(f"{run_dir.name} is both the run and one of its baselines")
    evaluation = evaluate_run(run_dir, baseline_dirs, args["repeats"], args["threads"])
    print(markdown(evaluation))
    print(f"evaluation: {run_dir / 'evaluation.md'} and evaluation.json")
