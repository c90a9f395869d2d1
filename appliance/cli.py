"""The `onlycs` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from appliance.config import DEFAULT_MODEL_NAME, AppConfig, ConfigError, load_config
from appliance.crypto import CryptoError
from appliance.keys import KeyFileError

DEFAULT_CONFIG = Path("config.toml")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _load(path: Path | None) -> AppConfig:
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return AppConfig().resolve_paths(Path.cwd())
        path = DEFAULT_CONFIG
    return load_config(path)


def cmd_config_validate(args: argparse.Namespace) -> int:
    load_config(args.file)
    print(f"{args.file}: OK")
    return 0


def cmd_models_prepare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from models.prepare import prepare_bundled

    config = _load(args.config)
    console = Console(stderr=True)
    with console.status("preparing the bundled model") as status:
        def step(message: str) -> None:
            console.log(message)
            status.update(message)

        prepare_bundled(config.models.root, args.name, force=args.force, step=step)
    return 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    from models.manifest import verify_folder

    config = _load(args.config)
    target = Path(args.target) if args.target else config.models.root / DEFAULT_MODEL_NAME
    if not target.is_absolute() and not target.exists():
        target = config.models.root / target
    result = verify_folder(target)
    for problem in result.problems:
        print(f"{target}: {problem}", file=sys.stderr)
    if result.ok:
        print(f"{target}: OK")
    return 0 if result.ok else 1


def cmd_keys_create(args: argparse.Namespace) -> int:
    from appliance.keys import KeyStore

    store = KeyStore(_load(args.config).security.keys_file)
    try:
        config = _load(args.config)
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


def cmd_keys_list(args: argparse.Namespace) -> int:
    import time

    from appliance.keys import KeyStore

    for r in KeyStore(_load(args.config).security.keys_file).list():
        state = "active" if r.active else "revoked " + time.strftime(
            "%Y-%m-%d %H:%M", time.gmtime(r.revoked))
        print(f"{r.id}  {r.scope:6}  {r.name:24}  rpm={r.rpm or '-'} tpm={r.tpm or '-'}  "
              f"{state}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from appliance.keys import KeyStore

    store = KeyStore(_load(args.config).security.keys_file)
    try:
        record = store.revoke(args.key)
    except ValueError as exc:
        print(f"{store.path}: {exc}", file=sys.stderr)
        return 2
    print(f"revoked {record.name!r} (id {record.id}); the appliance stops accepting it "
          "within a second")
    return 0


def cmd_tls_self_signed(args: argparse.Namespace) -> int:
    from appliance.tls import write_self_signed

    paths = write_self_signed(args.out, args.hostname, args.ip, days=args.days)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _open_store(args: argparse.Namespace) -> Any:
    from appliance.conversations import ConversationStore

    store = _load(args.config).store
    return ConversationStore(store.path, store.master_key_file, store.cipher)


def cmd_conversations_init_key(args: argparse.Namespace) -> int:
    from appliance.crypto import create_master_key

    path = _load(args.config).store.master_key_file
    try:
        create_master_key(path)
    except FileExistsError:
        print(f"{path}: already exists; refusing to overwrite a master key", file=sys.stderr)
        return 2
    print(f"created master key {path} (mode 0600): back it up; without it the store is lost")
    return 0


def cmd_conversations_export(args: argparse.Namespace) -> int:
    import json

    store = _open_store(args)
    if not store.has_session(args.session):
        print(f"no conversation with session id {args.session!r}", file=sys.stderr)
        return 2
    print(json.dumps({"session": args.session, "messages": store.export(args.session)},
                     ensure_ascii=False, indent=2))
    return 0


def cmd_conversations_rotate(args: argparse.Namespace) -> int:
    store = _open_store(args)
    key_id = store.rotate_key()
    print(f"new data key {key_id} encrypts new records; older keys stay for decryption")
    if args.reencrypt:
        print(f"re-encrypted {store.reencrypt()} records under key {key_id}")
    return 0


def cmd_conversations_purge(args: argparse.Namespace) -> int:
    config = _load(args.config)
    days = args.older_than_days or config.store.retention_days
    removed = _open_store(args).purge(days * 86400)
    print(f"purged {removed} messages older than {days:g} days")
    return 0


def cmd_router_train(args: argparse.Namespace) -> int:
    from serving.router.train import train

    report = train(step=lambda m: print(m, file=sys.stderr))
    _print_eval(report)
    return 0


def cmd_router_eval(args: argparse.Namespace) -> int:
    from serving.router.train import evaluate

    _print_eval(evaluate())
    return 0


def _print_eval(report: dict) -> None:
    print("held-out split of serving/router/data/routing.jsonl")
    for key, value in report.items():
        print(f"  {key:28} {value}")


def cmd_router_explain(args: argparse.Namespace) -> int:
    from serving.routing import build_engine

    engine = build_engine(_load(args.config))
    decision = engine.decide(args.message, full=True)
    print(f"message: {args.message!r}")
    print(f"intent:  {decision.intent} ({'MiniLM embedding' if decision.embedded else 'n-grams'})")
    print("features:")
    for name, value in sorted(decision.features.items()):
        print(f"  {name:24} {value:.4g}")
    for hit in decision.hits:
        print(f"sensitive: {hit.term!r} in list {hit.list_name} -> {hit.action}")
    print("path:")
    for step in decision.path:
        sign = ">" if step.went == "then" else "<="
        print(f"  {step.node}: {step.feature} = {step.value:.4g} {sign} {step.threshold:g}")
    print(f"decision: {decision.header()}")
    return 0


def cmd_lora_train(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from lora.train import TrainSettings, describe, train_adapter
    from models.registry import model_dir

    config = _load(args.config)
    base = model_dir(config, config.tiers.small)
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


def _admin_client(args: argparse.Namespace) -> Any:
    import os

    import httpx

    config = _load(args.config)
    scheme = "https" if config.tls.enabled else "http"
    url = args.url or f"{scheme}://{config.server.host}:{config.server.port}"
    key = args.key or os.environ.get("ONLYCS_ADMIN_KEY")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    verify: Any = True
    if args.ca:
        import ssl

        verify = ssl.create_default_context(cafile=str(args.ca))
    return httpx.Client(base_url=url, headers=headers, verify=verify, timeout=300)


def cmd_lora_eval(args: argparse.Namespace) -> int:
    from lora.evaluate import evaluate

    with _admin_client(args) as client:
        scores = evaluate(client, ["small", f"small:{args.adapter}"], args.kb,
                          progress=lambda m: print(m, file=sys.stderr))
    for model, score in scores.items():
        print(f"{model:28} {score['correct']:4}/{score['questions']}  "
              f"accuracy {score['accuracy']:.3f}")
    return 0


def cmd_lora_admin(args: argparse.Namespace) -> int:
    import json

    with _admin_client(args) as client:
        if args.action == "list":
            response = client.get("/admin/adapters")
        elif args.action == "load":
            response = client.post("/admin/adapters", json={
                "name": args.name, "path": args.path, "default": args.default})
        elif args.action == "unload":
            response = client.delete(f"/admin/adapters/{args.name}")
        else:
            response = client.put("/admin/adapters/default", json={"name": args.name})
    body = response.json()
    if response.status_code >= 400:
        print(f"error {response.status_code}: {body['error']['message']}", file=sys.stderr)
        return 2
    print(json.dumps(body, indent=2))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from appliance import logs
    from serving.launcher import preflight, serve_foreground

    config = _load(args.config)
    logs.configure(config.logging)
    problems = preflight(config)
    for problem in problems:
        print(f"{args.config or 'defaults'}: {problem}", file=sys.stderr)
    if problems:
        return 2
    return serve_foreground(config)


def cmd_doctor(args: argparse.Namespace) -> int:
    from appliance.doctor import report, run_checks

    text, code = report(run_checks(_load(args.config)))
    print(text)
    return code


def cmd_bundle_build(args: argparse.Namespace) -> int:
    from appliance.bundle import BundleError, build

    try:
        path = build(_load(args.config), args.out, profile=args.profile, arch=args.arch,
                     step=lambda message: print(f"bundle: {message}", flush=True))
    except BundleError as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 2
    print(f"{path} ({path.stat().st_size / 2**30:.2f} GiB)")
    return 0


def cmd_channels_serve(args: argparse.Namespace) -> int:
    from serving.channels.standalone import serve

    return serve(_load(args.config), args.backend, args.backend_ca)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onlycs", description="OnlyCS appliance")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the appliance in the foreground")
    serve.add_argument("--config", type=Path, help="config.toml (default: ./config.toml)")
    serve.set_defaults(func=cmd_serve)

    doctor = sub.add_parser("doctor", help="check this box: GPU, port, key files, "
                            "certificates, models; changes nothing")
    doctor.add_argument("--config", type=Path, help="config.toml (default: ./config.toml)")
    doctor.set_defaults(func=cmd_doctor)

    bundle = sub.add_parser("bundle", help="the air-gapped install bundle").add_subparsers(
        dest="action", required=True)
    bundle_build = bundle.add_parser("build", help="wheels, prepared models, playbooks and "
                                     "units in one tarball for a box without network")
    bundle_build.add_argument("--out", type=Path, required=True, help="folder to write into")
    bundle_build.add_argument("--profile", choices=["cpu", "gpu"], default="cpu")
    bundle_build.add_argument("--arch", choices=["x86_64", "aarch64"], default=None,
                              help="target architecture (default: this machine's)")
    bundle_build.add_argument("--config", type=Path, help="whose tier models to include")
    bundle_build.set_defaults(func=cmd_bundle_build)

    config = sub.add_parser("config", help="configuration files").add_subparsers(
        dest="action", required=True)
    validate = config.add_parser("validate", help="check a config file, start nothing")
    validate.add_argument("file", type=Path)
    validate.set_defaults(func=cmd_config_validate)

    models = sub.add_parser("models", help="model preparation and checksums").add_subparsers(
        dest="action", required=True)
    prepare = models.add_parser("prepare", help="convert the bundled model to safetensors")
    prepare.add_argument("--config", type=Path)
    prepare.add_argument("--name", default=DEFAULT_MODEL_NAME)
    prepare.add_argument("--force", action="store_true", help="rebuild even if verified")
    prepare.set_defaults(func=cmd_models_prepare)
    verify = models.add_parser("verify", help="check a model folder against its manifest")
    verify.add_argument("target", nargs="?", help="model name under models.root, or a folder")
    verify.add_argument("--config", type=Path)
    verify.set_defaults(func=cmd_models_verify)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=["client", "admin"], default="client")
    create.add_argument("--rpm", type=int, help="requests per minute (default from config)")
    create.add_argument("--tpm", type=int, help="tokens per minute (default from config)")
    create.add_argument("--persona", help="persona for this key's requests (sessions.personas)")
    create.add_argument("--config", type=Path)
    create.set_defaults(func=cmd_keys_create)
    listing = keys.add_parser("list", help="keys with scope and state (never the secret)")
    listing.add_argument("--config", type=Path)
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by name or id")
    revoke.add_argument("key")
    revoke.add_argument("--config", type=Path)
    revoke.set_defaults(func=cmd_keys_revoke)

    tls = sub.add_parser("tls", help="certificates").add_subparsers(dest="action", required=True)
    self_signed = tls.add_parser("self-signed", help="a test CA and a server certificate")
    self_signed.add_argument("--out", type=Path, default=Path("var/tls"))
    self_signed.add_argument("--hostname", action="append", default=[],
                             help="DNS name for the certificate (repeatable; default localhost)")
    self_signed.add_argument("--ip", action="append", default=[],
                             help="IP address for the certificate (repeatable; default 127.0.0.1)")
    self_signed.add_argument("--days", type=int, default=365)
    self_signed.set_defaults(func=cmd_tls_self_signed)

    router = sub.add_parser("router", help="the routing decision tree").add_subparsers(
        dest="action", required=True)
    router.add_parser("train", help="fit classifiers and the rule tree; print held-out scores"
                      ).set_defaults(func=cmd_router_train)
    router.add_parser("eval", help="held-out routing accuracy and small-tier share"
                      ).set_defaults(func=cmd_router_eval)
    explain = router.add_parser("explain", help="features, path and tier for one message")
    explain.add_argument("message")
    explain.add_argument("--config", type=Path)
    explain.set_defaults(func=cmd_router_explain)

    lora = sub.add_parser("lora", help="LoRA adapters for the small tier").add_subparsers(
        dest="action", required=True)
    lora_train = lora.add_parser("train", help="train an adapter on a knowledge base (CPU)")
    lora_train.add_argument("--kb", type=Path, default=Path("lora/data/kb.jsonl"))
    lora_train.add_argument("--out", type=Path, required=True)
    lora_train.add_argument("--rank", type=int, default=16)
    lora_train.add_argument("--epochs", type=int, default=6)
    lora_train.add_argument("--seed", type=int, default=1234)
    lora_train.add_argument("--config", type=Path)
    lora_train.set_defaults(func=cmd_lora_train)
    lora_eval = lora.add_parser("eval", help="held-out fact accuracy, base vs adapter, "
                                "through a running appliance")
    lora_eval.add_argument("--adapter", required=True, help="a loaded adapter's name")
    lora_eval.add_argument("--kb", type=Path, default=Path("lora/data/kb.jsonl"))
    lora_eval.set_defaults(func=cmd_lora_eval)
    lora_list = lora.add_parser("list", help="loaded adapters and the default")
    lora_load = lora.add_parser("load", help="validate and load an adapter, no restart")
    lora_load.add_argument("name")
    lora_load.add_argument("path", help="folder inside lora.root")
    lora_load.add_argument("--default", action="store_true", help="also make it the default")
    lora_unload = lora.add_parser("unload", help="unload an adapter")
    lora_unload.add_argument("name")
    lora_default = lora.add_parser("default",
                                   help="set the default adapter (no name: the base model)")
    lora_default.add_argument("name", nargs="?")
    for command in (lora_list, lora_load, lora_unload, lora_default):
        command.set_defaults(func=cmd_lora_admin)
    for command in (lora_eval, lora_list, lora_load, lora_unload, lora_default):
        command.add_argument("--url", help="appliance URL (default: from the config)")
        command.add_argument("--key", help="admin API key (default: $ONLYCS_ADMIN_KEY)")
        command.add_argument("--ca", type=Path, help="CA certificate for HTTPS")
        command.add_argument("--config", type=Path)

    conv = sub.add_parser("conversations", help="the encrypted conversation store"
                          ).add_subparsers(dest="action", required=True)
    init_key = conv.add_parser("init-key", help="create the master key file (0600)")
    init_key.set_defaults(func=cmd_conversations_init_key)
    export = conv.add_parser("export", help="decrypt one session's messages (admin)")
    export.add_argument("--session", required=True)
    export.set_defaults(func=cmd_conversations_export)
    rotate = conv.add_parser("rotate-key", help="new data key for new writes")
    rotate.add_argument("--reencrypt", action="store_true",
                        help="also re-encrypt older records under the new key")
    rotate.set_defaults(func=cmd_conversations_rotate)
    purge = conv.add_parser("purge", help="delete messages past the retention period")
    purge.add_argument("--older-than-days", type=float)
    purge.set_defaults(func=cmd_conversations_purge)
    for command in (init_key, export, rotate, purge):
        command.add_argument("--config", type=Path)

    channels = sub.add_parser("channels", help="chat-platform webhook adapters"
                              ).add_subparsers(dest="action", required=True)
    channels_serve = channels.add_parser(
        "serve", help="run only the channel adapters, in front of an OpenAI-compatible "
        "backend (API key from $ONLYCS_BACKEND_API_KEY)")
    channels_serve.add_argument("--backend", required=True,
                                help="base URL of the backend, e.g. https://10.0.0.5:8443")
    channels_serve.add_argument("--backend-ca", help="CA file to trust for the backend")
    channels_serve.add_argument("--config", type=Path)
    channels_serve.set_defaults(func=cmd_channels_serve)
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


if __name__ == "__main__":
    sys.exit(main())
