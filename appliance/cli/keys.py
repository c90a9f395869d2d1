"""`onlycs keys`: create, list and revoke API keys (stored hashed)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from appliance.cli.common import CONFIG, load
from kernel.keys import KeyStore


def cmd_create(args: argparse.Namespace) -> int:
    config = load(args.config)
    store = KeyStore(config.security.keys_file)
    try:
        if args.persona and args.persona not in config.sessions.personas:
            raise ValueError(f"unknown persona {args.persona!r}; configured: "
                             f"{', '.join(sorted(config.sessions.personas))}")
        key, record = store.create(args.name, args.scope, rpm=args.rpm, tpm=args.tpm,
                                   persona=args.persona)
    except ValueError as exc:
        print(f"{store.path}: {exc}", file=sys.stderr)
        return 2
    print(key)
    print(f"created {record.scope} key {record.name!r} (id {record.id}); it is shown only "
          "once and stored hashed", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for r in KeyStore(load(args.config).security.keys_file).list():
        state = "active" if r.active else "revoked " + time.strftime(
            "%Y-%m-%d %H:%M", time.gmtime(r.revoked))
        print(f"{r.id}  {r.scope:6}  {r.name:24}  rpm={r.rpm or '-'} tpm={r.tpm or '-'}  "
              f"{state}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    store = KeyStore(load(args.config).security.keys_file)
    try:
        record = store.revoke(args.key)
    except ValueError as exc:
        print(f"{store.path}: {exc}", file=sys.stderr)
        return 2
    print(f"revoked {record.name!r} (id {record.id}); the appliance stops accepting it "
          "within a second")
    return 0


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", parents=[CONFIG], help="create a key; it is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=["client", "admin"], default="client")
    create.add_argument("--rpm", type=int, help="requests per minute (default from config)")
    create.add_argument("--tpm", type=int, help="tokens per minute (default from config)")
    create.add_argument("--persona", help="persona for this key's requests (sessions.personas)")
    create.set_defaults(func=cmd_create)
    keys.add_parser("list", parents=[CONFIG], help="keys with scope and state (never the "
                    "secret)").set_defaults(func=cmd_list)
    revoke = keys.add_parser("revoke", parents=[CONFIG], help="revoke a key by name or id")
    revoke.add_argument("key")
    revoke.set_defaults(func=cmd_revoke)
