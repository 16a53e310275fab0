"""Reading weight files safely, loading them strictly, and seeding random init.

Nothing here unpickles arbitrary objects: safetensors files are plain tensors, and
other files go through ``torch.load(weights_only=True)``, which refuses code.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from subdistill.errors import UserError

log = logging.getLogger(__name__)

INIT_SEED = 0  # every random-init teacher is drawn from this seed
SHOWN_KEYS = 8  # how many key names an error message lists before "and N more"


@contextlib.contextmanager
def seeded_init(seed: int = INIT_SEED) -> Iterator[None]:
    """Random init that gives the same weights each time and leaves the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a torch state dict (weights only)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"teacher weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise UserError(f"cannot read {path} as safetensors: {err}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle with code in it, or not a torch file at all
        raise UserError(f"cannot read {path} as a weights-only torch file: {err}") from None

    # Training scripts often wrap the state dict, and DDP prefixes every key.
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _names(keys: list[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, hint: str = "") -> None:
    """Load every key or fail naming the missing, unexpected and mis-shaped ones."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {_names(mismatched)}")
    if problems:
        raise UserError(f"{source} does not fit the model ({'; '.join(problems)}){hint}")
    module.load_state_dict(state, strict=True)


def drop_prefixes(state: dict[str, torch.Tensor], prefixes: tuple[str, ...], source: str) -> dict[str, torch.Tensor]:
    """Remove keys under the given module names (a classifier the teacher will not use)."""
    dropped = [k for k in state if any(k.startswith(p + ".") for p in prefixes)]
    if dropped:
        log.info("%s: ignoring %s (teacher.num_classes=0)", source, _names(dropped))
    return {k: v for k, v in state.items() if k not in dropped}


def replace_module(root: nn.Module, target: nn.Module, replacement: nn.Module) -> str:
    """Swap ``target`` (found by identity) for ``replacement`` inside ``root``; returns its dotted name."""
    for name, module in root.named_modules():
        if module is target and name:
            parent_name, _, child = name.rpartition(".")
            parent = root.get_submodule(parent_name) if parent_name else root
            setattr(parent, child, replacement)
            return name
    raise ValueError("module to replace is not inside root")
