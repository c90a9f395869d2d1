"""What every command group shares: the `--config` option and loading the config."""

from __future__ import annotations

import argparse
from pathlib import Path

from kernel.config import AppConfig, load_config

DEFAULT_CONFIG = Path("config.toml")

# One `--config` for every command that reads the config (argparse parent parser).
CONFIG = argparse.ArgumentParser(add_help=False)
CONFIG.add_argument("--config", type=Path, help="config.toml (default: ./config.toml)")

# Commands that talk to a running appliance's API.
REMOTE = argparse.ArgumentParser(add_help=False, parents=[CONFIG])
REMOTE.add_argument("--url", help="appliance URL (default: from the config)")
REMOTE.add_argument("--key", help="admin API key (default: $ONLYCS_ADMIN_KEY, else "
                    "security.admin_key_file)")
REMOTE.add_argument("--ca", type=Path, help="CA certificate for HTTPS")


def load(path: Path | None) -> AppConfig:
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return AppConfig().resolve_paths(Path.cwd())
        path = DEFAULT_CONFIG
    return load_config(path)
