"""Recipes and strict overrides: parsing, inheritance, tiny forms, errors, frozen result."""

import dataclasses
import shlex
import subprocess
import sys

import pytest
import yaml

from subdistill.config import Config
from subdistill.errors import UserError
from subdistill.recipes import (
    available_recipes,
    command_arguments,
    config_from_yaml,
    config_to_yaml,
    parse_value,
    resolve,
)
from subdistill.runs import read_config, write_config

PAPER_AND_OFFLINE = {"resnet50_k128", "vit_k64", "bert_k64", "fmnist_k32", "wordnet_minilm_k32"}


@pytest.mark.parametrize(
    "text, expected",
    [("3", 3), ("-2", -2), ("3e-4", 3e-4), ("0.5", 0.5), ("true", True), ("False", False),
     ("null", None), ("[1, 2]", [1, 2]), ("[a,b]", ["a", "b"]), ("resnet18", "resnet18")],
)
def test_parse_value(text, expected):
    assert parse_value(text) == expected
    assert type(parse_value(text)) is type(expected)


def test_required_recipes_exist():
    assert PAPER_AND_OFFLINE <= set(available_recipes())


def test_override_wins_and_int_promotes_to_float():
    config = resolve(["recipe=vit_k64", "projection.k=128", "train.lr=1"])
    assert config.projection.k == 128
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.teacher.name == "vit_base_patch16_224"


def test_defaults_fill_what_a_recipe_leaves_out():
    config = resolve(["recipe=fmnist_k32"])
    assert config.projection.seed == 42
    assert config.train == type(config.train)()  # fmnist_k32 does not touch train


def test_string_fields_keep_the_text_as_typed():
    config = resolve(["recipe=fmnist_k32", "run=007", "teacher.name=1.10", "teacher.weights=null"])
    assert (config.run, config.teacher.name, config.teacher.weights) == ("007", "1.10", None)


def test_config_is_frozen():
    config = resolve(["recipe=fmnist_k32"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.projection.k = 3


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["recipe=fmnist_k32", "projection.kk=3"], "did you mean projection.k"),
        (["recipe=fmnist_k32", "train.lr=fast"], "train.lr expects float"),
        (["recipe=fmnist_k32", "train.epochs=1.5"], "train.epochs expects int"),
        (["recipe=fmnist_k32", "tiny=3"], "tiny expects bool"),
        (["recipe=nope"], "available: bert_k64"),
        (["recipe=fmnist_k32", "lr"], "expected key=value"),
        (["recipe=fmnist_k32", "probe.ks=[a,b]"], "probe.ks expects a list of int"),
        (["recipe=fmnist_k32", "probe.ks=[0]"], "at least 1"),
        (["recipe=fmnist_k32", "train.mixed_precision=fp8"], "must be one of no, bf16, fp16"),
        (["recipe=fmnist_k32", "train.lr=nan"], "finite"),
        (["recipe=fmnist_k32", "projection.seed=18446744073709551616"], "64 bits"),
        (["recipe=fmnist_k32", "train.lr=1", "train.lr=2"], "given twice"),
        (["recipe=../recipes/fmnist_k32"], "unknown recipe"),
        (["recipe=/tmp/fmnist_k32"], "unknown recipe"),
        (["recipe=fmnist_k32", "probe.ks=[1,2"], "quote the whole"),
        ([], "name a recipe"),
    ],
)
def test_user_mistakes_raise_user_error(argv, fragment):
    with pytest.raises(UserError, match=fragment):
        resolve(argv)


def test_cli_mistake_is_one_line_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "subdistill.cli", "config", "recipe=fmnist_k32", "trian.lr=1"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "Traceback" not in proc.stderr
    assert "train.lr" in proc.stderr


def test_recipe_builds_on_another_and_tiny_section(tmp_path):
    (tmp_path / "parent.yaml").write_text(yaml.safe_dump(
        {"projection": {"k": 16}, "train": {"lr": 0.5}, "when_tiny": {"projection": {"k": 4}}}
    ))
    (tmp_path / "child.yaml").write_text(yaml.safe_dump({"base": "parent", "train": {"lr": 0.25}}))
    config = resolve(["recipe=child"], recipe_dir=tmp_path)
    assert (config.projection.k, config.train.lr) == (16, 0.25)
    tiny = resolve(["recipe=child", "tiny=true"], recipe_dir=tmp_path)
    assert tiny.projection.k == 4 and tiny.train.max_steps == 2
    assert resolve(["recipe=child", "tiny=true", "projection.k=8"], recipe_dir=tmp_path).projection.k == 8


def test_recipe_with_unknown_key_is_refused(tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(UserError, match="bad.yaml"):
        resolve(["recipe=bad"], recipe_dir=tmp_path)


def test_recipe_cycle_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b\n")
    (tmp_path / "b.yaml").write_text("base: a\n")
    with pytest.raises(UserError, match="builds on itself"):
        resolve(["recipe=a"], recipe_dir=tmp_path)


@pytest.mark.parametrize("name", sorted(PAPER_AND_OFFLINE))
def test_every_recipe_has_a_tiny_form_that_round_trips(name):
    config = resolve([f"recipe={name}", "tiny=true"])
    assert config.tiny and config.train.max_steps <= 4 and 0 < config.data.limit_train <= 256
    assert config_from_yaml(config_to_yaml(config)) == config


def test_written_config_carries_version_and_commit(tmp_path):
    config = resolve(["recipe=fmnist_k32", "projection.k=16"])
    write_config(tmp_path, config)
    loaded, provenance = read_config(tmp_path)
    assert loaded == config
    assert provenance["subdistill_version"] and provenance["git_commit"]
    assert isinstance(Config(), Config)


def test_command_arguments_give_the_same_config_back():
    argv = ["recipe=fmnist_k32", "tiny=true", "train.lr=3e-4", "probe.ks=[64,16]", "data.augment=false",
            "teacher.model_kwargs={in_chans: 1, drop_rate: 0.1}", "run=my run", "student.name=a b"]
    config = resolve(argv)
    text = command_arguments(config)
    assert "run=" not in text and text.startswith("recipe=fmnist_k32 tiny=true")
    again = resolve(shlex.split(text) + ["run=my run"])
    assert again == config
    assert command_arguments(resolve(["recipe=fmnist_k32"])) == "recipe=fmnist_k32"
