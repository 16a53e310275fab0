"""Run folders under ``checkpoints/``: naming, and the resolved config written beside the outputs."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import yaml

import subdistill
from subdistill.config import Config
from subdistill.recipes import config_from_yaml, config_to_yaml

CONFIG_FILE = "config.yaml"


def git_commit() -> str:
    """The commit of the checkout the package runs from, or 'unknown' outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def config_digest(config: Config) -> str:
    """SHA-256 of the resolved config: the same on every process of a launch."""
    return hashlib.sha256(config_to_yaml(config).encode()).hexdigest()


def run_name(config: Config) -> str:
    """The configured name, else <recipe>-<local time>; call it on the main process only."""
    if config.run:
        return config.run
    return f"{config.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"


def write_config(run_dir: Path, config: Config) -> Path:
    """Write the resolved config with the package version and git commit it ran with."""
    run_dir.mkdir(parents=True, exist_ok=True)
    extra = {"subdistill_version": subdistill.__version__, "git_commit": git_commit()}
    path = run_dir / CONFIG_FILE
    path.write_text(config_to_yaml(config, extra))
    return path


def read_config(run_dir: Path) -> tuple[Config, dict]:
    """The config a run was made with, and the version/commit lines written with it."""
    text = (run_dir / CONFIG_FILE).read_text()
    tree = yaml.safe_load(text)
    provenance = {k: tree.get(k) for k in ("subdistill_version", "git_commit")}
    return config_from_yaml(text), provenance
