"""Distillation steps/s with cached against online targets on the Fashion-MNIST recipe; print JSON.

  online:  the frozen teacher runs on every batch, then the projection (train.targets=online)
  cached:  targets are looked up by example index in the projected feature cache
           (train.targets=cached); the one-off extraction is timed apart

Both run the real training engine (subdistill.train.run) with the recipe's teacher
(fmnist_k32: timm resnet18 on 1x28x28, random-init weights via teacher.finetune=false,
which costs the same compute as the fine-tuned teacher), its student (fmnist_cnn) and
batch size, no augmentation (so both see the same inputs), the same data order and
the same number of threads. Steps/s counts the optimizer steps after the first
``--warmup`` steps of each run, from the engine's own samples/s log records; online
and cached runs alternate (``--rounds``) so other load on the machine hits both alike.

    python benchmarks/distill_targets.py                  # a few minutes on 2 CPU cores
    python benchmarks/distill_targets.py --steps 400 --warmup 20 --examples 8192
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from accelerate.state import AcceleratorState, GradientState

from subdistill.features import load_or_extract
from subdistill.recipes import resolve
from subdistill.train import run


def settings(args: argparse.Namespace, output_root: str) -> list[str]:
    return [
        f"recipe={args.recipe}",
        f"output_root={output_root}",
        "teacher.finetune=false",
        "validate.required=false",
        "data.augment=false",
        f"data.limit_train={args.examples}",
        f"data.limit_test={args.test_examples}",
        "data.num_workers=0",
        f"train.max_steps={args.steps}",
        "train.epochs=1000",
        f"train.log_every={args.warmup}",
        "train.eval_every=0",
        f"train.save_every={args.steps}",
        "train.keep_last=1",
    ]


def steps_per_s(run_dir: Path, warmup: int, global_batch: int) -> dict:
    """Steps/s over the logged intervals after the first (warm-up) one."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "train/samples_per_s" in r and r["step"] > warmup]
    steps, seconds, previous = 0, 0.0, warmup
    for record in train:
        interval = record["step"] - previous
        steps += interval
        seconds += interval * global_batch / record["train/samples_per_s"]
        previous = record["step"]
    return {"steps": steps, "seconds": round(seconds, 3), "steps_per_s": round(steps / seconds, 3)}


def timed_run(args: argparse.Namespace, output_root: str, mode: str, round_: int) -> dict:
    config = resolve(settings(args, output_root) + [f"train.targets={mode}", f"run={mode}-{round_}"])
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the run's log lines; stdout carries only the JSON
        summary = run(config)
    wall = time.perf_counter() - start
    AcceleratorState._reset_state(True)  # the next run builds its own Accelerator in this process
    GradientState._reset_state()
    measured = steps_per_s(Path(summary["run_dir"]), args.warmup, summary["global_batch"])
    return {**measured, "wall_s": wall, "global_batch": summary["global_batch"], "targets": summary["targets"]}


def combine(rounds: list[dict]) -> dict:
    """Steps/s over all rounds of one mode: total steps over total measured seconds."""
    steps, seconds = sum(r["steps"] for r in rounds), sum(r["seconds"] for r in rounds)
    return {
        "targets": rounds[0]["targets"],
        "steps": steps,
        "seconds": round(seconds, 2),
        "steps_per_s": round(steps / seconds, 3),
        "samples_per_s": round(steps * rounds[0]["global_batch"] / seconds, 1),
        "steps_per_s_by_round": [r["steps_per_s"] for r in rounds],
        "wall_s_including_setup": round(sum(r["wall_s"] for r in rounds), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="fmnist_k32")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per mode")
    parser.add_argument("--warmup", type=int, default=10, help="steps left out of the measure (also the log interval)")
    parser.add_argument("--examples", type=int, default=2048, help="training examples (epochs repeat over them)")
    parser.add_argument("--test-examples", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2, help="online and cached alternate this many times")
    parser.add_argument("--threads", type=int, default=0, help="torch threads, 0 for torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps % args.warmup:
        parser.error("--steps must be a multiple of --warmup (the log interval)")

    with tempfile.TemporaryDirectory() as output_root:
        config = resolve(settings(args, output_root))

        # The cache is built once before timing; its cost is reported on its own.
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            for split in ("train", "test"):
                load_or_extract(config, split, progress=False)
        extraction = time.perf_counter() - start

        # Alternating evens out whatever else the machine is doing meanwhile.
        load_before = os.getloadavg()[0]
        runs: dict[str, list] = {"online": [], "cached": []}
        for round_ in range(args.rounds):
            for mode in runs:
                runs[mode].append(timed_run(args, output_root, mode, round_))
        online, cached = combine(runs["online"]), combine(runs["cached"])
        load_after = os.getloadavg()[0]

    result = {
        "benchmark": "distill_targets",
        "recipe": args.recipe,
        "teacher": f"{config.teacher.source}:{config.teacher.name} {config.teacher.model_kwargs}",
        "student": config.student.kind,
        "batch_size": config.train.batch_size,
        "steps_measured_per_mode": online["steps"],
        "online": online,
        "cached": cached,
        "cache_extraction_s": round(extraction, 2),
        "cache_examples": args.examples + args.test_examples,
        "ratio_cached_over_online": round(cached["steps_per_s"] / online["steps_per_s"], 2),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "cpus": os.cpu_count(),
            "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
