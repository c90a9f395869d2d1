"""What every command group shares: the `--config` option and loading the config."""

from __future__ import annotations

import argparse
from pathlib import Path

from kernel.config import AppConfig, load_config

DEFAULT_CONFIG = Path("config.toml")

# One `--config` for every command that reads the config (argparse parent parser).
CONFIG = argparse.ArgumentParser(add_help=False)
CONFIG.add_argument("--config", type=Path, help="config.toml (default: ./config.toml)")


def load(path: Path | None) -> AppConfig:
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return AppConfig().resolve_paths(Path.cwd())
        path = DEFAULT_CONFIG
    return load_config(path)
