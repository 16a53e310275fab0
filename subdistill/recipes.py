"""Recipes: named YAML files of differences from the defaults, plus strict overrides.

Resolution order, later wins:
  dataclass defaults < base recipes < the recipe < (tiny=true: TINY < each recipe's
  ``when_tiny`` section) < command-line ``key=value`` overrides.

Every key is checked against the dataclasses; an unknown key names the closest
valid ones, a wrong type names the expected type.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import shlex
import typing
from pathlib import Path
from typing import Any

import yaml

from subdistill.config import Config
from subdistill.errors import UserError

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes"

# Shrinks any recipe to a CPU smoke run; a recipe's when_tiny adds its own model sizes.
TINY = {
    "data.limit_train": 64,
    "data.limit_test": 32,
    "data.num_workers": 0,
    "train.epochs": 1,
    "train.max_steps": 2,
    "finetune.epochs": 1,
    "finetune.max_steps": 2,
    "finetune.batch_size": 8,
    "finetune.warmup_steps": 0,
    "train.batch_size": 8,
    "train.warmup_steps": 0,
    "train.log_every": 1,
    "train.eval_every": 2,
    "train.save_every": 2,
    "probe.epochs": 1,
    "probe.batch_size": 16,
    "validate.seeds": [0],
    "validate.sample": 32,
}

RESERVED = ("base", "when_tiny")

# Recipe names are plain file stems in recipes/; they also name run folders.
RECIPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

CHOICES = {
    "teacher.source": ("timm", "hf", "torchvision", "checkpoint"),
    "teacher.feature": ("auto", "cls", "avgpool", "pooler", "mean", "pre_logits"),
    "data.source": ("fashion_mnist", "cifar100", "imagenet100", "mnli", "wordnet_nouns", "fake_images", "fake_text"),
    "student.kind": ("timm", "hf_encoder", "teacher_layers", "fmnist_cnn", "text_cnn"),
    "train.stage": ("distill", "finetune"),
    "train.objective": ("subspace", "ce", "kd", "fitnets"),
    "train.mixed_precision": ("no", "bf16", "fp16"),
    "train.targets": ("auto", "online", "cached"),
    "finetune.optimizer": ("adamw", "sgd"),
    "probe.optimizer": ("adamw", "sgd"),
    "features.dtype": ("float16", "float32"),
    "export.formats": ("safetensors", "onnx", "torchscript"),
}
POSITIVE = {
    "projection.k",
    "probe.ks",
    "train.batch_size",
    "train.grad_accum",
    "finetune.batch_size",
    "probe.batch_size",
}


def available_recipes(recipe_dir: Path = RECIPE_DIR) -> list[str]:
    return sorted(p.stem for p in recipe_dir.glob("*.yaml"))


def parse_value(text: str) -> Any:
    """Command-line value -> int, float, bool, list, null or str."""
    lowered = text.strip().lower()
    if lowered in ("null", "none", "~", ""):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"[+-]?\d+", text.strip()):
        return int(text)
    try:
        return float(text)
    except ValueError:
        pass
    if text.strip().startswith(("[", "{")):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            first_line = str(err).splitlines()[0]
            message = f"cannot parse {text!r} as a list or mapping ({first_line}); quote the whole key=value"
            raise UserError(message) from None
    return str(text)  # a plain str, never the RawText it came in as


class RawText(str):
    """An override's text as typed; parsed once the key's type is known."""


def split_overrides(argv: list[str]) -> dict[str, Any]:
    """['recipe=x', 'train.lr=3e-4'] -> {'recipe': 'x', 'train.lr': RawText('3e-4')}."""
    overrides = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"expected key=value, got {arg!r} (for example recipe=fmnist_k32 train.lr=3e-4)")
        if key in overrides:
            raise UserError(f"{key} is given twice ({overrides[key]!r} and {value!r}); give it once")
        overrides[key] = RawText(value.strip())
    return overrides


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1}} -> {'train.lr': 1}; dict-typed fields stay whole."""
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and _is_section(dotted):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _sections() -> dict[str, type]:
    return {name: hint for name, hint in _field_types(Config).items() if dataclasses.is_dataclass(hint)}


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(dotted: str) -> bool:
    return "." not in dotted and dotted in _sections()


def valid_keys() -> dict[str, Any]:
    """Every dotted key a recipe or override may set, with its annotated type."""
    keys = {}
    for name, hint in _field_types(Config).items():
        if dataclasses.is_dataclass(hint):
            for sub, sub_hint in _field_types(hint).items():
                keys[f"{name}.{sub}"] = sub_hint
        else:
            keys[name] = hint
    return keys


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        return f"{args[0].__name__} or null"
    return getattr(hint, "__name__", str(hint))


def check_value(key: str, value: Any, hint: Any) -> Any:
    """Return value in the annotated type, or raise a UserError naming the expected type."""
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    if isinstance(value, RawText):
        # A string field keeps the text as typed (run=007 stays '007'); others are parsed.
        keep = base is str and not (optional and value.lower() in ("null", "none", "~"))
        value = str(value) if keep else parse_value(value)
    if value is None and optional:
        return None
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base)
        if not isinstance(value, list) or not all(type(v) is item for v in value):
            raise UserError(f"{key} expects a list of {item.__name__}, got {value!r}")
        check_choice(key, value)
        return value
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    ok = isinstance(value, base) and not (base is int and isinstance(value, bool))
    if not ok:
        shown = f"the text {value!r}" if isinstance(value, str) else f"{type(value).__name__} {value!r}"
        raise UserError(f"{key} expects {_type_name(hint)}, got {shown}")
    check_choice(key, value)
    return value


def check_choice(key: str, value: Any) -> None:
    """Enumerations and ranges that a type alone does not say."""
    # A list-valued key (export.formats) checks each of its items.
    items = value if isinstance(value, list) else [value]
    if key in CHOICES and any(item not in CHOICES[key] for item in items):
        raise UserError(f"{key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{key} must be a finite number, got {value!r}")
    if key in POSITIVE and any(v < 1 for v in (value if isinstance(value, list) else [value])):
        raise UserError(f"{key} must be at least 1, got {value!r}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise UserError(f"{key} must fit in 64 bits, got {value}")


def check_keys(flat: dict[str, Any], where: str) -> None:
    keys = valid_keys()
    for key in flat:
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"unknown key {key!r} in {where}{hint}")


def load_recipe(name: str, recipe_dir: Path = RECIPE_DIR, seen: tuple = ()) -> tuple[dict, dict]:
    """Return (body, when_tiny) of a recipe, each flat and merged over its bases."""
    path = recipe_dir / f"{name}.yaml"
    if not RECIPE_NAME.fullmatch(name) or not path.is_file():
        raise UserError(f"unknown recipe {name!r}; available: {', '.join(available_recipes(recipe_dir))}")
    if name in seen:
        raise UserError(f"recipe {name!r} builds on itself: {' -> '.join(seen + (name,))}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise UserError(f"recipe {path} must be a mapping of keys to values")
    body, tiny = {}, {}
    if tree.get("base"):
        body, tiny = load_recipe(tree["base"], recipe_dir, seen + (name,))
    if not isinstance(tree.get("when_tiny") or {}, dict):
        raise UserError(f"recipe {path.name}: when_tiny must be a mapping of keys to values")
    own_tiny = flatten(tree.get("when_tiny") or {})
    own_body = flatten({k: v for k, v in tree.items() if k not in RESERVED})
    check_keys(own_body, f"recipe {path.name}")
    check_keys(own_tiny, f"recipe {path.name} (when_tiny)")
    keys = valid_keys()
    for key, value in {**own_body, **own_tiny}.items():
        try:
            check_value(key, value, keys[key])
        except UserError as err:
            raise UserError(f"recipe {path.name}: {err}") from None
    return {**body, **own_body}, {**tiny, **own_tiny}


def build_config(flat: dict[str, Any]) -> Config:
    """Flat dotted values over the defaults -> frozen Config, every value type-checked."""
    check_keys(flat, "overrides")
    keys = valid_keys()
    sections: dict[str, dict] = {}
    top: dict[str, Any] = {}
    for key, value in flat.items():
        value = check_value(key, value, keys[key])
        if "." in key:
            section, sub = key.split(".", 1)
            sections.setdefault(section, {})[sub] = value
        else:
            top[key] = value
    hints = _field_types(Config)
    for section, values in sections.items():
        top[section] = hints[section](**values)
    return Config(**top)


def resolve(argv: list[str], recipe_dir: Path = RECIPE_DIR) -> Config:
    """Command-line arguments (recipe=NAME key=value ...) -> frozen Config."""
    overrides = split_overrides(argv)
    name = overrides.pop("recipe", None)
    if not name:
        raise UserError(f"name a recipe with recipe=NAME; available: {', '.join(available_recipes(recipe_dir))}")
    body, when_tiny = load_recipe(name, recipe_dir)
    flat = {**body}
    tiny = check_value("tiny", overrides.get("tiny", body.get("tiny", False)), bool)
    if tiny:
        flat.update(TINY)
        flat.update(when_tiny)
    flat.update(overrides)
    flat["recipe"] = name
    return build_config(flat)


def _as_argument(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))  # YAML reads JSON back
    return str(value)


def command_arguments(config: Config, recipe_dir: Path = RECIPE_DIR, only: tuple[str, ...] = ()) -> str:
    """The recipe=... key=value arguments that give ``config`` again (run and resume left out), shell-quoted.

    A resume must be launched with the run's own settings; this is how a message spells them.
    ``only`` keeps just the keys starting with one of these prefixes.
    """
    args = [f"recipe={config.recipe}"] + (["tiny=true"] if config.tiny else [])
    try:
        recipe = flatten(resolve(list(args), recipe_dir).to_dict())
    except UserError:
        recipe = {}  # the recipe file is gone: spell out nothing more than its name
    for key, value in flatten(config.to_dict()).items():
        if only and not key.startswith(only):
            continue
        if key not in ("recipe", "tiny", "run", "resume") and recipe and recipe.get(key) != value:
            args.append(f"{key}={_as_argument(value)}")
    return " ".join(shlex.quote(arg) for arg in args)


def config_to_yaml(config: Config, extra: dict | None = None) -> str:
    tree = config.to_dict()
    if extra:
        tree = {**extra, **tree}
    return yaml.safe_dump(tree, sort_keys=False)


def config_from_yaml(text: str) -> Config:
    """Read back a config written next to a run (extra top-level keys are dropped)."""
    tree = yaml.safe_load(text)
    known = set(valid_keys()) | set(_sections())
    return build_config(flatten({k: v for k, v in tree.items() if k in known}))
