"""`subdistill validate recipe=NAME [validate.epsilon=0.01]`: are the JL-K targets a valid subspace?

Probes on cached teacher_features (full width, JL-K, PCA-K and learned-K for every K
of probe.ks and the recipe's K, plus JL-K at the validate.seeds), all trained in one
pass; then writes into the run folder
  report.md, report.json   Table 2 and Table 3 analogues, validity per K (gate.py
                           defines it), the smallest valid K, geometry, seed spread
  probes.safetensors       the trained heads (and learned projections)
  tsne.png, accuracy_vs_k.png
and one record per K under checkpoints/validations/ for the gate.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from subdistill import figures, gate
from subdistill.config import Config
from subdistill.errors import UserError
from subdistill.features import load_or_extract, locate
from subdistill.geometry import distance_ratios, sample_rows, seed_spread
from subdistill.pca import fit_pca
from subdistill.probes import ProbeBank, default_device, evaluate_probes, sweep_specs, train_probes
from subdistill.projection import JLProjection
from subdistill.recipes import resolve
from subdistill.runs import run_name, write_config
from subdistill.tensorfile import save_tensors


def sweep_ks(config: Config, d: int) -> tuple[list[int], list[int]]:
    """(K values to probe, largest first; K values of probe.ks skipped because they exceed D)."""
    k = config.projection.k
    if not 1 <= k <= d:
        raise UserError(f"projection.k={k} must be in [1, D={d}] for teacher {config.teacher.name}")
    wanted = sorted(set(config.probe.ks) | {k}, reverse=True)
    return [x for x in wanted if 1 <= x <= d], [x for x in wanted if not 1 <= x <= d]


def run_validation(config: Config, *, progress: bool = True) -> tuple[Path, dict]:
    """Run the whole validation of a recipe; returns (run folder, report)."""
    from subdistill.data import num_classes

    run_dir = Path(config.output_root) / run_name(config)
    write_config(run_dir, config)
    clock = {"start": time.perf_counter()}

    train_h, train_y = load_or_extract(config, "train", progress=progress)  # (N, D), (N,)
    test_h, test_y = load_or_extract(config, "test", progress=progress)
    clock["features"] = time.perf_counter()
    d, c = train_h.shape[1], num_classes(config.data)
    ks, skipped = sweep_ks(config, d)
    seed = config.projection.seed
    specs = sweep_specs(d, ks, seed, list(config.validate.seeds))
    bank, history = _train_bank(config, specs, train_h, train_y, c, max(ks), progress)
    results = evaluate_probes(bank, test_h, test_y)
    clock["probes"] = time.perf_counter()

    report = {
        "recipe": config.recipe,
        "run": run_dir.name,
        "teacher": locate(config, "train")[1]["teacher"],
        "D": d,
        "classes": c,
        "train_examples": len(train_y),
        "test_examples": len(test_y),
        "k": config.projection.k,
        "ks": ks,
        "skipped_ks": skipped,
        "projection_seed": seed,
        "epsilon": config.validate.epsilon,
        "probe": dataclasses.asdict(config.probe),
        "probe_train_loss": history,
        "heads": {s.name: {"method": s.method, "k": s.k, "seed": s.seed, **results[s.name]} for s in specs},
    }
    full = results["full"]
    report["validity"] = {k: gate.validity(full, results[f"jl-{k}"], config.validate.epsilon) for k in ks}
    valid = [k for k in ks if report["validity"][k]["valid"]]
    report["smallest_valid_k"] = min(valid) if valid else None
    report["geometry"] = _geometry(test_h, ks, seed, config.validate.sample, config.seed)
    report["seed_spread"] = _spread(results, ks, seed, config.validate.seeds)

    report["figures"] = _figures(config, bank, report, test_h, test_y, run_dir)
    clock["figures"] = time.perf_counter()
    report["seconds"] = {
        "features": clock["features"] - clock["start"],
        "probes": clock["probes"] - clock["features"],
        "figures": clock["figures"] - clock["probes"],
    }

    _save_bank(bank, run_dir / "probes.safetensors")
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / "report.md").write_text(markdown(report))
    report["records"] = [
        str(gate.write_record(config, k, full, results[f"jl-{k}"], run_dir / "report.md")) for k in ks
    ]
    return run_dir, report


def _train_bank(config: Config, specs, train_h, train_y, c: int, pca_k: int, progress: bool):
    """Every head of the sweep in one bank, trained in one pass over the cached features; returned on the CPU."""
    pca = fit_pca(train_h, pca_k)
    bank = ProbeBank(train_h.shape[1], c, specs, pca=pca, init_seed=config.seed).to(default_device())
    history = train_probes(bank, train_h, train_y, config.probe, seed=config.seed, progress=progress)
    return bank.cpu(), history


def _geometry(test_h: torch.Tensor, ks: list[int], seed: int, sample: int, sample_seed: int) -> dict:
    return {k: distance_ratios(test_h, JLProjection(k, test_h.shape[1], seed), sample, sample_seed) for k in ks}


def _spread(results: dict, ks: list[int], seed: int, extra_seeds: list[int]) -> dict:
    spread = {}
    for k in ks:
        by_seed = {seed: results[f"jl-{k}"]["accuracy"]}
        by_seed.update({s: results[f"jl-{k}-seed{s}"]["accuracy"] for s in extra_seeds if s != seed})
        spread[k] = {**seed_spread(by_seed), "accuracy": by_seed}
    return spread


def _figures(config: Config, bank: ProbeBank, report: dict, test_h, test_y, run_dir: Path) -> list[str]:
    k, d = config.projection.k, report["D"]
    heads = report["heads"]
    curves = {
        method: {x: heads[f"{method}-{x}"]["accuracy"] for x in report["ks"]} for method in ("jl", "pca", "learned")
    }
    accuracy_png = figures.accuracy_figure(
        curves, heads["full"]["accuracy"], d, run_dir / "accuracy_vs_k.png", title=f"{config.recipe}: probe accuracy"
    )

    # The same sample of test examples in all four panels; the learned projection as trained.
    rows = sample_rows(len(test_y), config.validate.sample, config.seed)
    with torch.no_grad():
        inputs = bank.inputs(test_h[rows])
    panels = {
        f"full (D={d})": inputs["full"],
        f"JL (K={k})": inputs[f"jl-{k}"],
        f"PCA (K={k})": inputs[f"pca-{k}"],
        f"learned (K={k})": inputs[f"learned-{k}"],
    }
    tsne_png = figures.tsne_figure(panels, test_y[rows], run_dir / "tsne.png", seed=config.seed)
    return [accuracy_png.name, tsne_png.name]


def _save_bank(bank: ProbeBank, path: Path) -> None:
    state = {name: value.detach().cpu().contiguous() for name, value in bank.state_dict().items()}
    specs = json.dumps([{"name": s.name, "method": s.method, "k": s.k, "seed": s.seed} for s in bank.specs])
    save_tensors(state, str(path), metadata={"specs": specs, "D": str(bank.d), "classes": str(bank.num_classes)})


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def markdown(report: dict) -> str:
    """The report as Markdown: the tables a reader compares with the paper's."""
    d, heads, full = report["D"], report["heads"], report["heads"]["full"]
    lines = [
        f"# Validation of {report['recipe']} (run {report['run']})",
        "",
        f"Teacher `{report['teacher']}`, D={d}, {report['classes']} classes; probes trained on "
        f"{report['train_examples']} examples, scored on {report['test_examples']} test examples. "
        f"Projection seed {report['projection_seed']}, epsilon {report['epsilon']}.",
        "",
        "## Linear probes (Table 2 analogue)",
        "",
        "| method | K | ratio | accuracy (%) | diff to full (points) | loss |",
        "|---|---|---|---|---|---|",
        f"| full (baseline) | {d} | 1x | {_pct(full['accuracy'])} | - | {full['loss']:.4f} |",
    ]
    for k in report["ks"]:
        jl = heads[f"jl-{k}"]
        diff = 100 * (jl["accuracy"] - full["accuracy"])
        lines.append(f"| JL | {k} | {d / k:.3g}x | {_pct(jl['accuracy'])} | {diff:+.2f} | {jl['loss']:.4f} |")
    lines += ["", "## JL against data-dependent projections (Table 3 analogue)", ""]
    lines += ["| K | ratio | JL (%) | PCA (%) | learned (%) |", "|---|---|---|---|---|"]
    for k in report["ks"]:
        accs = [_pct(heads[f"{m}-{k}"]["accuracy"]) for m in ("jl", "pca", "learned")]
        lines.append(f"| {k} | {d / k:.3g}x | " + " | ".join(accs) + " |")
    lines += [
        "",
        "## Validity (JL within epsilon of full width)",
        "",
        "Valid when `acc_full - acc_JL <= epsilon` and `exp(-loss_full) - exp(-loss_JL) <= epsilon` (test "
        "cross-entropy in nats; exp(-loss) is the geometric-mean probability of the true class).",
        "",
        "| K | accuracy gap (points) | loss gap (exp(-loss)) | loss gap (nats) | valid |",
        "|---|---|---|---|---|",
    ]
    for k in report["ks"]:
        v = report["validity"][k]
        mark = "yes" if v["valid"] else "**no**"
        gaps = f"{100 * v['accuracy_gap']:+.2f} | {v['loss_gap']:+.4f} | {v['loss_gap_nats']:+.4f}"
        lines.append(f"| {k} | {gaps} | {mark} |")
    smallest = report["smallest_valid_k"]
    lines += ["", f"Smallest valid K: **{smallest if smallest is not None else 'none'}** (recipe K={report['k']}: "
              f"{'valid' if report['validity'][report['k']]['valid'] else 'NOT valid'})."]
    if report["skipped_ks"]:
        lines.append(f"Skipped K > D: {report['skipped_ks']}.")
    lines += ["", "## Geometry: pairwise distance ratios after/before JL on test examples", ""]
    lines += ["| K | pairs | mean | p1 | p99 |", "|---|---|---|---|---|"]
    for k, g in report["geometry"].items():
        lines.append(f"| {k} | {g['pairs']} | {g['mean']:.4f} | {g['p1']:.4f} | {g['p99']:.4f} |")
    lines += ["", "## JL accuracy over projection seeds", ""]
    lines += ["| K | seeds | accuracies (%) | mean (%) | std (points) | range (points) |", "|---|---|---|---|---|---|"]
    for k, s in report["seed_spread"].items():
        accs = ", ".join(_pct(a) for a in s["accuracy"].values())
        lines.append(
            f"| {k} | {', '.join(map(str, s['accuracy']))} | {accs} | {_pct(s['mean'])} | "
            f"{100 * s['std']:.2f} | {100 * s['range']:.2f} |"
        )
    lines += ["", "Figures: " + ", ".join(f"[{name}]({name})" for name in report["figures"]), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    config = resolve(argv)
    run_dir, report = run_validation(config)
    print(markdown(report))
    print(f"report: {run_dir / 'report.md'}")
