"""Running and checking a box: serve, doctor, bundle build, config validate, channels serve,
tls self-signed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.cli.common import CONFIG, load
from kernel.config import load_config


def cmd_serve(args: argparse.Namespace) -> int:
    from kernel import logs
    from serving.launcher import preflight, serve_foreground, supervise, supervised

    if not supervised():  # Ctrl-C's group signal must not reach Ray's daemons
        argv = [sys.executable, "-m", "appliance.cli", "serve"]
        if args.config is not None:
            argv += ["--config", str(Path(args.config).resolve())]
        return supervise(argv)
    config = load(args.config)
    logs.configure(config.logging)
    problems = preflight(config)
    for problem in problems:
        print(f"{args.config or 'defaults'}: {problem}", file=sys.stderr)
    if problems:
        return 2
    return serve_foreground(config)


def cmd_doctor(args: argparse.Namespace) -> int:
    from appliance.doctor import report, run_checks

    text, code = report(run_checks(load(args.config)))
    print(text)
    return code


def cmd_bundle_build(args: argparse.Namespace) -> int:
    from appliance.bundle import BundleError, build

    try:
        path = build(load(args.config), args.out, profile=args.profile, arch=args.arch,
                     step=lambda message: print(f"bundle: {message}", flush=True))
    except BundleError as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 2
    print(f"{path} ({path.stat().st_size / 2**30:.2f} GiB)")
    return 0


def cmd_config_validate(args: argparse.Namespace) -> int:
    load_config(args.file)
    print(f"{args.file}: OK")
    return 0


def cmd_channels_serve(args: argparse.Namespace) -> int:
    from serving.channels.standalone import serve

    return serve(load(args.config), args.backend, args.backend_ca)


def cmd_tls_self_signed(args: argparse.Namespace) -> int:
    from appliance.tls import write_self_signed

    paths = write_self_signed(args.out, args.hostname, args.ip, days=args.days)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def register(sub: Any) -> None:
    sub.add_parser("serve", parents=[CONFIG], help="run the appliance in the foreground"
                   ).set_defaults(func=cmd_serve)
    sub.add_parser("doctor", parents=[CONFIG], help="check this box: GPU, port, key files, "
                   "certificates, models; changes nothing").set_defaults(func=cmd_doctor)
    _bundle(sub)
    config = sub.add_parser("config", help="configuration files").add_subparsers(
        dest="action", required=True)
    validate = config.add_parser("validate", help="check a config file, start nothing")
    validate.add_argument("file", type=Path)
    validate.set_defaults(func=cmd_config_validate)
    _channels(sub)
    _tls(sub)


def _bundle(sub: Any) -> None:
    bundle = sub.add_parser("bundle", help="the air-gapped install bundle").add_subparsers(
        dest="action", required=True)
    build = bundle.add_parser("build", parents=[CONFIG], help="wheels, prepared models, "
                              "playbooks and units in one tarball for a box without network")
    build.add_argument("--out", type=Path, required=True, help="folder to write into")
    build.add_argument("--profile", choices=["cpu", "gpu"], default="cpu")
    build.add_argument("--arch", choices=["x86_64", "aarch64"], default=None,
                       help="target architecture (default: this machine's)")
    build.set_defaults(func=cmd_bundle_build)


def _channels(sub: Any) -> None:
    channels = sub.add_parser("channels", help="chat-platform webhook adapters"
                              ).add_subparsers(dest="action", required=True)
    serve = channels.add_parser(
        "serve", parents=[CONFIG], help="run only the channel adapters, in front of an "
        "OpenAI-compatible backend (API key from $ONLYCS_BACKEND_API_KEY)")
    serve.add_argument("--backend", required=True,
                       help="base URL of the backend, e.g. https://10.0.0.5:8443")
    serve.add_argument("--backend-ca", help="CA file to trust for the backend")
    serve.set_defaults(func=cmd_channels_serve)


def _tls(sub: Any) -> None:
    tls = sub.add_parser("tls", help="certificates").add_subparsers(dest="action", required=True)
    self_signed = tls.add_parser("self-signed", help="a test CA and a server certificate")
    self_signed.add_argument("--out", type=Path, default=Path("var/tls"))
    self_signed.add_argument("--hostname", action="append", default=[],
                             help="DNS name for the certificate (repeatable; default localhost)")
    self_signed.add_argument("--ip", action="append", default=[],
                             help="IP address for the certificate (repeatable; default 127.0.0.1)")
    self_signed.add_argument("--days", type=int, default=365)
    self_signed.set_defaults(func=cmd_tls_self_signed)
