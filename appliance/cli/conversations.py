"""`onlycs conversations`: the encrypted store's master key, export, rotation, purge."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from appliance.cli.common import CONFIG, load
from kernel.crypto import create_master_key
from kernel.keys import KeyStore
from kernel.store import ConversationStore, open_store
from serving.pipeline.session import owned


def _open_store(args: argparse.Namespace) -> ConversationStore:
    return open_store(load(args.config).store)


def cmd_init_key(args: argparse.Namespace) -> int:
    path = load(args.config).store.master_key_file
    try:
        create_master_key(path)
    except FileExistsError:
        print(f"{path}: already exists; refusing to overwrite a master key", file=sys.stderr)
        return 2
    print(f"created master key {path} (mode 0600): back it up; without it the store is lost")
    return 0


def _owner(args: argparse.Namespace) -> str | None:
    """The session's owner the admin named: a key (name or id) or a channel."""
    if args.channel:
        return f"channel.{args.channel}"
    if args.key:
        for record in KeyStore(load(args.config).security.keys_file).list():
            if args.key in (record.id, record.name):
                return record.id
        return args.key  # e.g. `anonymous`, the caller when keys are off
    return None


def cmd_export(args: argparse.Namespace) -> int:
    """Sessions belong to the key that made them: the same client id under two keys is two
    sessions. Without --key / --channel the id must name exactly one."""
    store = _open_store(args)
    owner = _owner(args)
    # Sessions stored before 2026-12-01 carry no owner: they are found by their bare id.
    found = ([owned(owner, args.session)] if owner
             else [*store.sessions_named(args.session), args.session])
    found = [s for s in found if store.has_session(s)]
    if not found:
        print(f"no conversation with session id {args.session!r}"
              + (f" of {owner}" if owner else ""), file=sys.stderr)
        return 2
    if len(found) > 1:
        owners = ", ".join(s.rsplit("/", 1)[0] if "/" in s else "(none)" for s in found)
        print(f"session id {args.session!r} exists under {len(found)} owners ({owners}): "
              "name one with --key or --channel", file=sys.stderr)
        return 2
    stored = found[0]
    owner_of = stored.rsplit("/", 1)[0] if "/" in stored else None
    print(json.dumps({"session": args.session, "owner": owner_of,
                      "messages": store.export(stored)}, ensure_ascii=False, indent=2))
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    store = _open_store(args)
    key_id = store.rotate_key()
    print(f"new data key {key_id} encrypts new records; older keys stay for decryption")
    if args.reencrypt:
        print(f"re-encrypted {store.reencrypt()} records under key {key_id}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    config = load(args.config)
    days = args.older_than_days or config.store.retention_days
    removed = _open_store(args).purge(days * 86400)
    print(f"purged {removed} messages older than {days:g} days")
    return 0


def register(sub: Any) -> None:
    conv = sub.add_parser("conversations", help="the encrypted conversation store"
                          ).add_subparsers(dest="action", required=True)
    conv.add_parser("init-key", parents=[CONFIG], help="create the master key file (0600)"
                    ).set_defaults(func=cmd_init_key)
    export = conv.add_parser("export", parents=[CONFIG],
                             help="decrypt one session's messages (admin)")
    export.add_argument("--session", required=True, help="the id the client sent")
    owner = export.add_mutually_exclusive_group()
    owner.add_argument("--key", help="the API key (name or id) whose session it is")
    owner.add_argument("--channel", choices=["wecom", "feishu", "dingtalk"],
                       help="the chat channel whose session it is")
    export.set_defaults(func=cmd_export)
    rotate = conv.add_parser("rotate-key", parents=[CONFIG], help="new data key for new writes")
    rotate.add_argument("--reencrypt", action="store_true",
                        help="also re-encrypt older records under the new key")
    rotate.set_defaults(func=cmd_rotate)
    purge = conv.add_parser("purge", parents=[CONFIG],
                            help="delete messages past the retention period")
    purge.add_argument("--older-than-days", type=float)
    purge.set_defaults(func=cmd_purge)
