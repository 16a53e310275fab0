"""Tiny finished runs for the evaluate and export tests, built once per pytest session.

One output root holds a validation of the tiny Fashion-MNIST teacher (so the JL-32 probe
head exists before training), a subspace student and the three baselines, all with the
same data, student and steps. Built on first use and shared by tests/test_evaluate.py and
tests/test_export.py.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

from train_helpers import fmnist_args, run_inline

OBJECTIVES = ("subspace", "ce", "kd", "fitnets")

# Three optimizer steps, one state saved at the end, evaluation at the end only.
SHORT = ("train.max_steps=3", "train.save_every=0", "train.eval_every=0", "train.log_every=3", "probe.ks=[32]")

_built: dict = {}


def tiny_args(root: Path, *extra: str) -> list[str]:
    return fmnist_args(root, *SHORT, *extra)


def validate_tiny(root: Path) -> Path:
    """`subdistill validate` on the runs' settings, without its figures (t-SNE is slow and not tested here)."""
    from subdistill import validate
    from subdistill.recipes import resolve

    with mock.patch.object(validate, "_figures", lambda *args, **kwargs: []):
        run_dir, _ = validate.run_validation(resolve(tiny_args(root, "run=validation")), progress=False)
    return run_dir


def tiny_runs(tmp_path_factory) -> dict:
    """{"root", "validation", "subspace", "ce", "kd", "fitnets": run folder, "summaries": {objective: summary}}."""
    if not _built:
        root = tmp_path_factory.mktemp("tiny_runs")
        built = {"root": root, "validation": validate_tiny(root), "summaries": {}}
        for objective in OBJECTIVES:
            summary = run_inline(tiny_args(root, f"run={objective}", f"train.objective={objective}"))
            built[objective] = Path(summary["run_dir"])
            built["summaries"][objective] = summary
        _built.update(built)
    return _built
