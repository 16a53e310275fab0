"""The validity gate: distillation onto JL-K targets only after `validate` showed the subspace is valid.

Validity (Definition 3.1, as measured here): on the test split, the linear probe
on JL-K targets is within epsilon of the probe on the full teacher_features in
both
  accuracy:  acc_full - acc_JL <= epsilon                      (fractions: 0.01 = 1 point)
  loss:      exp(-loss_full) - exp(-loss_JL) <= epsilon
where loss is the mean test cross-entropy in nats. exp(-loss) is the geometric
mean of the probability a probe gives the true class, so both conditions are
drops on the same 0..1 scale and one epsilon serves both. Doing better than
full width never fails either condition.

`validate` writes one record per K under checkpoints/validations/, keyed by the
teacher's weights, the data splits, K and the projection seed; the gate reads it
back and judges it with the current validate.epsilon.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shlex
import time
from pathlib import Path
from typing import Any

from subdistill.config import Config
from subdistill.errors import UserError

RECORD_DIR = "validations"
# Settings that change what validate measures; the command a refusal prints repeats them.
RELEVANT_SECTIONS = ("seed", "output_root", "teacher", "data", "projection", "finetune", "probe", "features")


def validity(full: dict[str, float], jl: dict[str, float], epsilon: float) -> dict[str, Any]:
    """Judge one JL head against the full-width head ({"accuracy", "loss"} each)."""
    accuracy_gap = full["accuracy"] - jl["accuracy"]
    loss_gap = math.exp(-full["loss"]) - math.exp(-jl["loss"])
    return {
        "accuracy_gap": accuracy_gap,
        "loss_gap": loss_gap,
        "loss_gap_nats": jl["loss"] - full["loss"],
        "epsilon": epsilon,
        "valid": accuracy_gap <= epsilon and loss_gap <= epsilon,
    }


def record_key(config: Config, k: int) -> dict[str, Any]:
    """What a validation is of: the effective teacher's weights, both splits, K and the projection seed."""
    from subdistill.data import dataset_fingerprint
    from subdistill.store import effective_teacher
    from subdistill.teachers import teacher_fingerprint

    return {
        "teacher": teacher_fingerprint(effective_teacher(config)),
        "train": dataset_fingerprint(config.data, "train", False),
        "test": dataset_fingerprint(config.data, "test", False),
        "k": k,
        "projection_seed": config.projection.seed,
    }


def record_path(config: Config, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(config.output_root) / RECORD_DIR / f"k{key['k']}-seed{key['projection_seed']}-{digest}.json"


def write_record(config: Config, k: int, full: dict, jl: dict, report: Path) -> Path:
    """Store the outcome of validating K for the gate to find."""
    key = record_key(config, k)
    path = record_path(config, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "key": key,
        "recipe": config.recipe,
        "full": full,
        "jl": jl,
        **validity(full, jl, config.validate.epsilon),
        "report": str(report),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(path)
    return path


def validate_command(config: Config) -> str:
    """The `subdistill validate` line that validates what this config would distil."""
    from subdistill.recipes import flatten, resolve

    args = [f"recipe={config.recipe}"] + (["tiny=true"] if config.tiny else [])
    try:
        base = flatten(resolve(args).to_dict())
    except UserError:  # a config not made from a recipe: name its settings as they are
        base = {}
    for key, value in flatten(config.to_dict()).items():
        if key.split(".")[0] in RELEVANT_SECTIONS and base.get(key, object()) != value:
            text = value if isinstance(value, str) else json.dumps(value)
            args.append(shlex.quote(f"{key}={text}"))
    return "subdistill validate " + " ".join(args)


def check_gate(config: Config) -> None:
    """Raise UserError unless the recipe's K passed validation for this teacher and data (validate.required)."""
    if not config.validate.required:
        return
    k = config.projection.k
    key = record_key(config, k)
    path = record_path(config, key)
    command = validate_command(config)
    if not path.is_file():
        raise UserError(
            f"targets at K={k} were not validated for this teacher and data; run first: {command} "
            f"(or set validate.required=false to distil anyway)"
        )
    record = json.loads(path.read_text())
    if record.get("key") != key:
        raise UserError(f"validation record {path} does not match this teacher and data; run again: {command}")
    verdict = validity(record["full"], record["jl"], config.validate.epsilon)
    if not verdict["valid"]:
        raise UserError(
            f"K={k} failed validation (JL-{k} accuracy {100 * record['jl']['accuracy']:.2f}% vs full "
            f"{100 * record['full']['accuracy']:.2f}%, loss gap {verdict['loss_gap']:.4f}, "
            f"epsilon {config.validate.epsilon}); see {record['report']}; pick a valid K (projection.k), "
            f"fine-tune the teacher, or set validate.required=false to distil anyway"
        )


def passed(config: Config) -> bool:
    """True when the gate would let this config through."""
    try:
        check_gate(dataclasses.replace(config, validate=dataclasses.replace(config.validate, required=True)))
    except UserError:
        return False
    return True
