"""``subdistill config recipe=NAME ...``: print the resolved config as YAML."""

from __future__ import annotations

from subdistill.recipes import config_to_yaml, resolve


def main(argv: list[str]) -> None:
    print(config_to_yaml(resolve(argv)), end="")
