"""Time a whole probe sweep (1 full + 4 JL + 4 PCA + 4 learned heads) two ways on Fashion-MNIST; print JSON.

  one pass:  extract teacher_features once into the cache, then train all heads together
             over the cached features (subdistill.features + subdistill.probes)
  naive:     each head trained on its own, the teacher re-run on every batch of every
             epoch (plus one teacher pass to fit PCA for each PCA head, and one over the
             test split to score each head)

Both use the recipe's teacher (fmnist_k32: timm resnet18, 1 channel; random-init weights,
teacher.finetune=false, which costs the same compute as the fine-tuned one), the recipe's
probe settings, the same example order and the same number of threads.

    python benchmarks/probe_sweep.py --examples 2000 --epochs 2     # ~2-3 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from subdistill.data import build_dataset, num_classes
from subdistill.features import load_or_extract
from subdistill.pca import fit_pca
from subdistill.probes import (
    HeadSpec,
    ProbeBank,
    build_optimizer,
    init_head,
    cosine_schedule,
    evaluate_probes,
    sweep_specs,
    train_probes,
)
from subdistill.recipes import resolve
from subdistill.teachers import load_teacher


def one_pass(config, specs: list[HeadSpec]) -> tuple[float, dict]:
    """Seconds for cache extraction + PCA + all heads trained together + scoring, and the accuracies."""
    start = time.perf_counter()
    train_h, train_y = load_or_extract(config, "train", progress=False)  # (N, D)
    test_h, test_y = load_or_extract(config, "test", progress=False)
    ks = sorted({s.k for s in specs if s.method == "pca"})
    bank = ProbeBank(
        train_h.shape[1], num_classes(config.data), specs, pca=fit_pca(train_h, max(ks)), init_seed=config.seed
    )
    train_probes(bank, train_h, train_y, config.probe, seed=config.seed, progress=False)
    results = evaluate_probes(bank, test_h, test_y)
    return time.perf_counter() - start, {name: r["accuracy"] for name, r in results.items()}


def teacher_batches(teacher, dataset, batch_size: int, order=None):
    """(teacher_features (B, D), labels (B,)) for a dataset in the given order, the teacher run on each batch."""
    source = dataset if order is None else Subset(dataset, order.tolist())
    for images, labels in DataLoader(source, batch_size=batch_size, shuffle=False, num_workers=0):
        yield teacher(images), labels


def initial_heads(specs: list[HeadSpec], c: int, seed: int) -> dict[str, dict]:
    """The heads' initial weights as the one-pass ProbeBank draws them."""
    return {s.name: init_head(s.name, s.k, c, seed).state_dict() for s in specs}


def naive_head(config, spec: HeadSpec, initial: dict, teacher, train_set, test_set) -> tuple[float, float]:
    """Seconds to train and score one head alone, the teacher run online throughout, and its accuracy."""
    start = time.perf_counter()
    pca = None
    if spec.method == "pca":
        # Its own pass over the train split to fit the basis: without a cache nothing else holds the features.
        train_h = torch.cat([h for h, _ in teacher_batches(teacher, train_set, 256)])
        pca = fit_pca(train_h, spec.k)
        del train_h
    bank = ProbeBank(teacher.feature_dim, num_classes(config.data), [spec], pca=pca)
    bank.heads[spec.name].load_state_dict(initial)  # the same start as in the one-pass bank
    optimizer = build_optimizer(bank.parameters(), config.probe)
    schedule = cosine_schedule(optimizer, config.probe.epochs * math.ceil(len(train_set) / config.probe.batch_size))
    order_generator = torch.Generator().manual_seed(config.seed)
    bank.train()
    for _ in range(config.probe.epochs):
        order = torch.randperm(len(train_set), generator=order_generator)
        for h, y in teacher_batches(teacher, train_set, config.probe.batch_size, order):
            loss = F.cross_entropy(bank(h)[spec.name], y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    bank.eval()
    correct = total = 0
    with torch.no_grad():
        for h, y in teacher_batches(teacher, test_set, 256):
            correct += int((bank(h)[spec.name].argmax(-1) == y).sum())
            total += len(y)
    return time.perf_counter() - start, correct / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fmnist_k32")
    parser.add_argument("--examples", type=int, default=2000, help="train examples (data.limit_train)")
    parser.add_argument("--test-examples", type=int, default=1000, help="test examples (data.limit_test)")
    parser.add_argument("--epochs", type=int, default=2, help="probe epochs (the recipe has 5)")
    parser.add_argument("--naive-heads", type=int, default=0, help="measure only this many naive heads (one of "
                        "each method first) and extrapolate the rest; 0 measures all")  # fmt: skip
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps torch's default. On a "
                        "shared machine 1 thread keeps both timings steadier")  # fmt: skip
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as output_root:
        config = resolve([
            f"recipe={args.recipe}", "teacher.finetune=false", f"data.limit_train={args.examples}",
            f"data.limit_test={args.test_examples}", f"probe.epochs={args.epochs}", "data.num_workers=0",
            f"output_root={output_root}", "validate.seeds=[]",
        ])  # fmt: skip
        teacher_cfg = config.teacher
        d = load_teacher(teacher_cfg).feature_dim
        specs = sweep_specs(d, list(config.probe.ks), config.projection.seed)

        # The one-pass sweep runs before and after the naive heads (each time with a fresh cache), so a
        # change in the machine's load during the run shows up instead of tilting the ratio.
        load_before = os.getloadavg()
        fast_first, fast_accuracy = one_pass(dataclasses.replace(config, output_root=f"{output_root}/first"), specs)

        # The naive protocol over the same split, transform and example order.
        teacher = load_teacher(teacher_cfg)
        train_set = build_dataset(config.data, "train", train_transform=False)
        test_set = build_dataset(config.data, "test", train_transform=False)
        chosen = _choose(specs, args.naive_heads)
        initial = initial_heads(specs, num_classes(config.data), config.seed)
        naive = {s.name: naive_head(config, s, initial[s.name], teacher, train_set, test_set) for s in chosen}

        fast_second, _ = one_pass(dataclasses.replace(config, output_root=f"{output_root}/second"), specs)
        load_after = os.getloadavg()
        fast_seconds = (fast_first + fast_second) / 2

    by_method = {m: [naive[s.name][0] for s in chosen if s.method == m] for m in ("full", "jl", "pca", "learned")}
    naive_seconds = sum(sum(times) / len(times) * sum(s.method == m for s in specs) for m, times in by_method.items())
    extrapolated = len(chosen) < len(specs)
    report = {
        "benchmark": "probe_sweep",
        "recipe": args.recipe,
        "teacher": f"{teacher_cfg.source}:{teacher_cfg.name} (random init, D={d})",
        "train_examples": len(train_set),
        "test_examples": len(test_set),
        "probe": {"optimizer": config.probe.optimizer, "epochs": config.probe.epochs,
                  "batch_size": config.probe.batch_size, "ks": list(config.probe.ks)},  # fmt: skip
        "heads": [s.name for s in specs],
        "one_pass_seconds": round(fast_seconds, 2),
        "one_pass_runs_seconds": [round(fast_first, 2), round(fast_second, 2)],
        "naive_seconds": round(naive_seconds, 2),
        "naive_heads_measured": [s.name for s in chosen],
        "naive_extrapolated": extrapolated,
        "naive_note": ("naive time of unmeasured heads = mean measured time of heads of the same method"
                       if extrapolated else "every head measured"),  # fmt: skip
        "ratio": round(naive_seconds / fast_seconds, 2),  # against the mean of the two one-pass runs
        # Same initial heads, example order and settings; what differs is float16 cached features vs float32 online.
        "max_accuracy_difference": round(max(abs(naive[n][1] - fast_accuracy[n]) for n in naive), 4),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}",
        "load_average_1min": {"start": round(load_before[0], 2), "end": round(load_after[0], 2)},
    }
    print(json.dumps(report, indent=2))


def _choose(specs: list[HeadSpec], count: int) -> list[HeadSpec]:
    """All heads, or `count` of them taking one of each method before a second of any."""
    if count <= 0 or count >= len(specs):
        return list(specs)
    ordered = sorted(specs, key=lambda s: [x for x in specs if x.method == s.method].index(s))
    return ordered[: max(count, 4)]


if __name__ == "__main__":
    main()
