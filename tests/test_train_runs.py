"""End-to-end training runs on tiny Fashion-MNIST: the equivalences the engine promises.

One uninterrupted single-process run is the reference; a two-process launch with
half the batch, a run with gradient accumulation, and a run paused and resumed must
all end at the same student weights. Augmentation is on throughout, so these also
check that each item's random crop does not depend on who fetches it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from train_helpers import (
    FMNIST_R_SHA256,
    fmnist_args,
    largest_difference,
    launch,
    run_inline,
    student_weights,
)

from subdistill.errors import UserError
from subdistill.training.checkpoints import list_states, read_trainer

# Float sums in another order (two processes, two micro-batches) move the weights this much after 10 steps.
TOLERANCE = 5e-5


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("reference")
    summary = run_inline(fmnist_args(root, "run=reference"))
    return {"root": root, "summary": summary, "run_dir": Path(summary["run_dir"])}


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_reference_run_writes_what_a_run_holds(reference):
    run_dir, summary = reference["run_dir"], reference["summary"]
    assert sorted(p.name for p in reference["root"].iterdir()) == ["reference"]
    for name in ("config.yaml", "student.safetensors", "student.json", "projection.safetensors", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert summary["steps"] == 10 and summary["num_processes"] == 1 and summary["targets"] == "online"
    assert summary["projection_sha256"] == FMNIST_R_SHA256
    assert [step for step, _ in list_states(run_dir)] == [8, 10]  # save_every=2, keep_last=2
    assert read_trainer(run_dir / "state" / "step_10")["step"] == 10
    assert summary["eval"]["examples"] == 33
    assert 0 < summary["eval"]["loss"] < metrics(run_dir)[0]["train/loss"]  # it learned something

    # Log lines every log_every steps with the same fields, and evaluation at eval_every.
    train_steps = [r["step"] for r in metrics(run_dir) if "train/loss" in r]
    assert train_steps == [2, 4, 6, 8, 10]
    fields = {"train/loss", "train/lr", "train/samples_per_s"}
    assert all(fields <= set(r) for r in metrics(run_dir) if "train/loss" in r)
    assert [r["step"] for r in metrics(run_dir) if "eval/loss" in r] == [5, 10]


def test_two_process_launch_matches_one_process(reference, tmp_path):
    proc = launch(fmnist_args(tmp_path, "train.batch_size=4"), processes=2)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # Exactly one run folder, named once and shared by both processes.
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1, runs
    assert proc.stdout.count("run folder ") == 1
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["num_processes"] == 2, "the launch should have started two processes"
    assert summary["global_batch"] == 8
    assert summary["projection_sha256_per_process"] == [FMNIST_R_SHA256, FMNIST_R_SHA256]

    # 33 test examples over 2 processes x batch 4: padded shards, yet each example counted once.
    assert summary["eval"]["examples"] == 33
    assert summary["eval"]["loss"] == pytest.approx(reference["summary"]["eval"]["loss"], rel=1e-4)
    assert largest_difference(student_weights(runs[0]), student_weights(reference["run_dir"])) < TOLERANCE


def test_gradient_accumulation_matches_one_bigger_batch(reference, tmp_path):
    summary = run_inline(fmnist_args(tmp_path, "run=accum", "train.batch_size=4", "train.grad_accum=2"))
    assert summary["global_batch"] == 8 and summary["steps"] == 10
    assert largest_difference(student_weights(summary["run_dir"]), student_weights(reference["run_dir"])) < TOLERANCE


def test_paused_and_resumed_run_matches_uninterrupted(reference, tmp_path, capsys):
    # Pause in the first epoch (8 steps each), resume into the second.
    paused = run_inline(fmnist_args(tmp_path, "run=resumed", "train.stop_at=5"))
    run_dir = tmp_path / "resumed"
    assert paused == {} and not (run_dir / "student.safetensors").exists()
    hint = capsys.readouterr().out.split("continue with: ")[1].splitlines()[0]
    assert f"output_root={tmp_path}" in hint and "tiny=true" in hint and hint.endswith(f"resume={run_dir}")
    assert "stop_at" not in hint  # the continuation runs to the end
    assert list_states(run_dir)[-1][0] == 5

    with pytest.raises(UserError, match="already holds a run"):
        run_inline(fmnist_args(tmp_path, "run=resumed"))  # a fresh start would mix with the paused run
    resumed = run_inline(fmnist_args(tmp_path, "resume=latest"))  # finds the run by its recipe
    assert resumed["run_dir"] == str(run_dir)
    a, b = student_weights(run_dir), student_weights(reference["run_dir"])
    assert all(torch.equal(a[key], b[key]) for key in a), largest_difference(a, b)

    # The resumed run logs each step once, and what the uninterrupted one logged (step 6 averages
    # steps 5-6 there but only step 6 here, as step 5 ran before the pause).
    steps = [r["step"] for r in metrics(run_dir) if "train/loss" in r]
    assert steps == [2, 4, 6, 8, 10]
    ours = [r["train/loss"] for r in metrics(run_dir) if "train/loss" in r]
    theirs = [r["train/loss"] for r in metrics(reference["run_dir"]) if "train/loss" in r]
    assert ours[:2] == theirs[:2] and ours[3:] == pytest.approx(theirs[3:], rel=1e-6)


def test_tensorboard_stream_has_namespaced_tags_and_increasing_steps(reference):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = reference["run_dir"] / "tensorboard"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/samples_per_s", "eval/loss", "eval/cosine", "eval/examples"} <= tags
    for tag in tags:
        steps = [event.step for event in events.Scalars(tag)]
        assert steps == sorted(set(steps)), tag
    lrs = [event.value for event in events.Scalars("train/lr")]
    assert lrs == sorted(lrs, reverse=True)  # warmup 0, then the cosine only falls


def test_non_finite_loss_stops_naming_step_and_last_good_state(tmp_path):
    args = fmnist_args(tmp_path, "run=blowup", "train.lr=1e30", "train.clip_grad=0", "train.log_every=1",
                       "train.save_every=1", "train.keep_last=5")
    with pytest.raises(UserError, match="non-finite loss") as caught:
        run_inline(args)
    match = re.search(r"non-finite loss at step (\d+); last good state: (\S+);", str(caught.value))
    assert match, str(caught.value)
    bad_step, good_state = int(match.group(1)), Path(match.group(2))
    assert read_trainer(good_state)["step"] == bad_step - 1
    assert max(step for step, _ in list_states(tmp_path / "blowup")) == bad_step - 1  # nothing saved after
