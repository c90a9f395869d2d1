"""The `onlycs` command: one module per command group, each adding its own subcommands."""

from __future__ import annotations

import argparse
import logging
import sys

from appliance.cli import (
    conversations,
    kb,
    keys,
    lora,
    models,
    operations,
    router,
)
from kernel.config import ConfigError
from kernel.crypto import CryptoError
from kernel.keys import KeyFileError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
GROUPS = (operations, models, keys, conversations, router, lora, kb)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onlycs", description="OnlyCS appliance")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        return 2
    except (CryptoError, KeyFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
