"""`onlycs lora`: train an adapter, and load / unload / list / default it in a running
appliance through the SDK's admin client."""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from appliance.cli.common import CONFIG, REMOTE, load
from kernel.config import AppConfig
from onlycs.admin import AdminClient
from onlycs.errors import APIStatusError

# The shipped knowledge base, inside the installed package: a bundle-installed appliance
# has no checkout to find `lora/data/` relative to.
KB = Path(str(resources.files("lora") / "data" / "kb.jsonl"))


def cmd_train(args: argparse.Namespace) -> int:
    import importlib.util

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    if importlib.util.find_spec("peft") is None:
        raise SystemExit("onlycs lora train: the peft package is missing: install the "
                         "train extra (pip install 'onlycs[train]'; every bundle has it)")

    from lora.train import TrainSettings, describe, train_adapter
    from models.registry import model_dir

    config = load(args.config)
    base = model_dir(config, config.tiers[config.lora.tier])
    settings = TrainSettings(rank=args.rank, epochs=args.epochs, seed=args.seed)
    with Progress(TextColumn("training"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total} steps  loss {task.fields[loss]:.3f}"), TimeRemainingColumn(),
                  transient=False) as bar:
        task = bar.add_task("train", total=None, loss=float("nan"))

        def progress(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss=loss)

        meta = train_adapter(base, args.kb, args.out, settings, progress)
    print(f"adapter written to {args.out}: {describe(meta)}")
    return 0


def admin_client(args: argparse.Namespace) -> AdminClient:
    config = load(args.config)
    scheme = "https" if config.tls.enabled else "http"
    url = args.url or f"{scheme}://{config.server.host}:{config.server.port}"
    key = args.key or os.environ.get("ONLYCS_ADMIN_KEY") or _key_file(config)
    return AdminClient(url, key, verify=str(args.ca) if args.ca else True)


def _key_file(config: AppConfig) -> str | None:
    """The first admin key `serve` wrote, when this user may read it."""
    try:
        return config.security.admin_key_file.read_text().strip() or None
    except OSError:
        return None


def cmd_eval(args: argparse.Namespace) -> int:
    from lora.evaluate import evaluate

    tier = load(args.config).lora.tier
    with admin_client(args) as client:
        scores = evaluate(client.http, [tier, f"{tier}:{args.adapter}"], args.kb,
                          progress=lambda m: print(m, file=sys.stderr),
                          grounding=not args.no_grounding)
    for model, score in scores.items():
        print(f"{model:28} {score['correct']:4}/{score['questions']}  "
              f"accuracy {score['accuracy']:.3f}")
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    with admin_client(args) as client:
        try:
            if args.action == "list":
                body = client.adapters()
            elif args.action == "load":
                body = client.load_adapter(args.name, args.path, default=args.default)
            elif args.action == "unload":
                body = client.unload_adapter(args.name)
            else:
                body = client.set_default_adapter(args.name)
        except APIStatusError as err:
            print(f"error {err.status}: {err.message}", file=sys.stderr)
            return 2
    print(json.dumps(body, indent=2))
    return 0


def register(sub: Any) -> None:
    lora = sub.add_parser("lora", help="LoRA adapters of the LoRA tier").add_subparsers(
        dest="action", required=True)
    train = lora.add_parser("train", parents=[CONFIG],
                            help="train an adapter on a knowledge base (CPU)")
    train.add_argument("--kb", type=Path, default=KB)
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--rank", type=int, default=16)
    train.add_argument("--epochs", type=int, default=6)
    train.add_argument("--seed", type=int, default=1234)
    train.set_defaults(func=cmd_train)
    remote = REMOTE
    evaluate = lora.add_parser("eval", parents=[remote], help="held-out fact accuracy, base "
                               "vs adapter, through a running appliance")
    evaluate.add_argument("--adapter", required=True, help="a loaded adapter's name")
    evaluate.add_argument("--kb", type=Path, default=KB)
    evaluate.add_argument("--no-grounding", action="store_true",
                          help="only the models alone, not also with the knowledge base")
    evaluate.set_defaults(func=cmd_eval)
    lora.add_parser("list", parents=[remote], help="loaded adapters and the default"
                    ).set_defaults(func=cmd_admin)
    load_ = lora.add_parser("load", parents=[remote],
                            help="validate and load an adapter, no restart")
    load_.add_argument("name")
    load_.add_argument("path", help="folder inside lora.root")
    load_.add_argument("--default", action="store_true", help="also make it the default")
    load_.set_defaults(func=cmd_admin)
    unload = lora.add_parser("unload", parents=[remote], help="unload an adapter")
    unload.add_argument("name")
    unload.set_defaults(func=cmd_admin)
    default = lora.add_parser("default", parents=[remote],
                              help="set the default adapter (no name: the base model)")
    default.add_argument("name", nargs="?")
    default.set_defaults(func=cmd_admin)
