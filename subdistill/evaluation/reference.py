"""What a student is judged against; every piece was made by an earlier step.

  the validation report of this teacher, data, K and projection seed (the gate's record
  names it): the teacher's full-width, JL-K, PCA-K and learned-K probe accuracies;
  the JL-K probe head validation trained on t (training/heads.py), applied to s(x) unchanged;
  the test targets t = R h / sqrt(K), from the feature cache and the run's own R.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from torch import Tensor

from subdistill.config import Config
from subdistill.errors import UserError
from subdistill.projection import JLProjection
from subdistill.training import losses
from subdistill.training.distill import PROJECTION_FILE

PROBE_METHODS = ("full", "jl", "pca", "learned")


def validation_report(config: Config) -> tuple[Optional[dict], Optional[Path]]:
    """(report.json of the validation that covers this K, its path), or (None, None) when there is none."""
    from subdistill import gate

    record_file = gate.record_path(config, gate.record_key(config, config.projection.k))
    if not record_file.is_file():
        return None, None
    report_file = Path(json.loads(record_file.read_text())["report"]).with_name("report.json")
    if not report_file.is_file():
        return None, None
    return json.loads(report_file.read_text()), report_file


def teacher_probes(report: Optional[dict], k: int) -> dict[str, Optional[dict]]:
    """{method: {"k", "accuracy", "loss"} or None} for full width and JL / PCA / learned at K."""
    heads = (report or {}).get("heads", {})
    found = {}
    for method in PROBE_METHODS:
        head = heads.get("full" if method == "full" else f"{method}-{k}")
        found[method] = None if head is None else {"k": head["k"], "accuracy": head["accuracy"], "loss": head["loss"]}
    return found


def run_projection(folder: Path, config: Config, d: Optional[int] = None) -> JLProjection:
    """The R a subspace run trained against, checked against its config (and the teacher's D when given)."""
    path = Path(folder) / PROJECTION_FILE
    if not path.is_file():
        raise UserError(f"{folder} is a subspace run without its {PROJECTION_FILE}")
    projection = JLProjection.load(path)  # checks the bytes against the recorded fingerprint and seed
    wanted = (config.projection.k, projection.d if d is None else d, config.projection.seed)
    if (projection.k, projection.d, projection.seed) != wanted:
        raise UserError(
            f"{path} holds R for K={projection.k}, D={projection.d}, seed={projection.seed}; the run's config "
            f"and teacher give K={wanted[0]}, D={wanted[1]}, seed={wanted[2]}"
        )
    return projection


def target_agreement(student_out: Tensor, targets: Tensor) -> dict[str, float]:
    """How close s(x) is to t on the test split, (N, K) each."""
    if student_out.shape != targets.shape:
        raise UserError(f"the student gives {tuple(student_out.shape)}, the targets are {tuple(targets.shape)}")
    return {
        "mse": float((student_out - targets).pow(2).mean()),  # per coordinate
        "squared_error": float(losses.squared_error(student_out, targets).mean()),  # summed over K, the train loss
        "cosine": float(losses.cosine(student_out, targets).mean()),
    }


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of (N, C) logits whose arg-max is the label."""
    return int((logits.argmax(dim=1) == labels).sum()) / max(1, len(labels))
