"""`onlycs models`: prepare the bundled model, verify a folder against its manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.cli.common import CONFIG, load
from kernel.config import DEFAULT_MODEL_NAME


def cmd_prepare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from models.prepare import prepare_bundled

    config = load(args.config)
    console = Console(stderr=True)
    with console.status("preparing the bundled model") as status:
        def step(message: str) -> None:
            console.log(message)
            status.update(message)

        prepare_bundled(config.models.root, args.name, force=args.force, step=step)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from models.manifest import verify_folder

    config = load(args.config)
    target = Path(args.target) if args.target else config.models.root / DEFAULT_MODEL_NAME
    if not target.is_absolute() and not target.exists():
        target = config.models.root / target
    result = verify_folder(target)
    for problem in result.problems:
        print(f"{target}: {problem}", file=sys.stderr)
    if result.ok:
        print(f"{target}: OK")
    return 0 if result.ok else 1


def register(sub: Any) -> None:
    models = sub.add_parser("models", help="model preparation and checksums").add_subparsers(
        dest="action", required=True)
    prepare = models.add_parser("prepare", parents=[CONFIG],
                                help="convert the bundled model to safetensors")
    prepare.add_argument("--name", default=DEFAULT_MODEL_NAME)
    prepare.add_argument("--force", action="store_true", help="rebuild even if verified")
    prepare.set_defaults(func=cmd_prepare)
    verify = models.add_parser("verify", parents=[CONFIG],
                               help="check a model folder against its manifest")
    verify.add_argument("target", nargs="?", help="model name under models.root, or a folder")
    verify.set_defaults(func=cmd_verify)
