"""The teacher's JL probe head: the linear map K -> C that validation trained on the targets.

The extra loss terms and evaluation read a class out of s(x) through it: the head
was fit on t, and the student is trained to produce t. Validation owns the head;
this module finds it the way the gate finds its verdict: the validation record of
this teacher, data, K and projection seed names the report, and the probes file
beside that report holds ``heads.jl-<K>.weight`` / ``.bias``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from safetensors import safe_open
from torch import nn

from subdistill.config import Config
from subdistill.errors import UserError

PROBES_FILE = "probes.safetensors"


def find_probe_head(config: Config) -> Optional[nn.Linear]:
    """The frozen JL-K probe head of the effective teacher, or None when validation has not made one."""
    from subdistill import gate

    k, seed = config.projection.k, config.projection.seed
    record_file = gate.record_path(config, gate.record_key(config, k))
    if not record_file.is_file():
        return None
    probes = Path(json.loads(record_file.read_text())["report"]).parent / PROBES_FILE
    if not probes.is_file():
        return None
    name = f"jl-{k}"
    with safe_open(str(probes), framework="pt") as handle:
        specs = {spec["name"]: spec for spec in json.loads((handle.metadata() or {}).get("specs", "[]"))}
        if name not in specs or specs[name]["seed"] != seed:
            return None
        weight, bias = handle.get_tensor(f"heads.{name}.weight"), handle.get_tensor(f"heads.{name}.bias")
    head = nn.Linear(k, weight.shape[0])
    head.load_state_dict({"weight": weight, "bias": bias})
    return head.requires_grad_(False).eval()


def require_probe_head(config: Config, head: Optional[nn.Linear]) -> None:
    weights = (("ce_weight", config.train.ce_weight), ("kd_weight", config.train.kd_weight))
    wants = [name for name, weight in weights if weight > 0]
    if wants and head is None:
        raise UserError(
            f"train.{' and train.'.join(wants)} need the teacher's JL-{config.projection.k} probe head, which "
            f"validation makes: run `subdistill validate recipe={config.recipe} ...` first, or set them to 0"
        )
