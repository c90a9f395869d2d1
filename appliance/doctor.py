"""`onlycs doctor`: is this box ready to run the appliance? Each check says what it saw and
what to do; nothing is changed."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kernel.config import AppConfig

Status = Literal["ok", "warn", "fail", "skip"]
CERT_MIN_DAYS = 30


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def check_gpu(config: AppConfig, run: Callable[..., subprocess.CompletedProcess] = subprocess.run
              ) -> Check:
    smi = shutil.which("nvidia-smi")
    wanted = config.profile == "gpu"
    if smi is None:
        if wanted:
            return Check("gpu", "fail", "profile is gpu but nvidia-smi is not installed "
                         "(the provisioning nvidia role installs the driver)")
        return Check("gpu", "skip", "cpu profile; no NVIDIA driver on this box")
    try:
        out = run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                  capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("gpu", "fail" if wanted else "warn", f"nvidia-smi did not run: {exc}")
    gpus = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not gpus:
        detail = (out.stderr or out.stdout).strip().splitlines()[:1] or ["no GPU listed"]
        return Check("gpu", "fail" if wanted else "warn", f"nvidia-smi: {detail[0]}")
    cuda = _cuda_version(run, smi)
    return Check("gpu", "ok", f"{len(gpus)} GPU(s): {'; '.join(gpus)}; CUDA driver {cuda}")


def _cuda_version(run: Callable[..., subprocess.CompletedProcess], smi: str) -> str:
    out = run([smi], capture_output=True, text=True, timeout=30)
    for token in out.stdout.split("CUDA Version:")[1:2]:
        return token.split()[0]
    return "unknown"


def check_port(config: AppConfig) -> Check:
    host, port = config.server.host, config.server.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return Check("port", "fail", f"{host}:{port} cannot be bound ({exc.strerror}); "
                         "another process (or a running appliance) holds it")
    return Check("port", "ok", f"{host}:{port} is free")


def _mode_problem(path: Path) -> str | None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return f"{path} has mode {mode:04o}; run `chmod 600 {path}`"
    return None


def check_secret_files(config: AppConfig) -> list[Check]:
    checks = []
    keys = config.security.keys_file
    if keys.exists():
        problem = _mode_problem(keys)
        checks.append(Check("keys file", "fail" if problem else "ok",
                            problem or f"{keys} is 0600"))
    elif config.auth_required:
        checks.append(Check("keys file", "fail", f"auth is on but {keys} does not exist; "
                            "create a key with `onlycs keys create`"))
    else:
        checks.append(Check("keys file", "skip", "auth is off (loopback) and no key file"))
    master = config.store.master_key_file
    if not config.store.enabled:
        checks.append(Check("master key", "skip", "conversation store disabled"))
    elif master.exists():
        problem = _mode_problem(master)
        checks.append(Check("master key", "fail" if problem else "ok",
                            problem or f"{master} is 0600"))
    else:
        checks.append(Check("master key", "warn", f"{master} does not exist yet; the first "
                            "start creates it (0600): back it up"))
    return checks


def check_tls(config: AppConfig, now: dt.datetime | None = None) -> Check:
    if not config.tls.enabled:
        return Check("tls", "skip" if not config.auth_required else "warn",
                     "TLS is off" + ("" if not config.auth_required else
                                     " on a non-loopback address: API keys travel in clear"))
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = config.tls.cert_file, config.tls.key_file
    assert cert_path is not None and key_path is not None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        return Check("tls", "fail", f"{cert_path}: not a readable PEM certificate ({exc})")
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return Check("tls", "fail", f"{key_path}: not a readable unencrypted PEM key ({exc})")
    if key.public_key().public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo):
        return Check("tls", "fail", f"{key_path} is not the key of {cert_path}")
    now = now or dt.datetime.now(dt.UTC)
    if now < cert.not_valid_before_utc:
        return Check("tls", "fail", f"{cert_path} is not valid before "
                     f"{cert.not_valid_before_utc:%Y-%m-%d}")
    left = cert.not_valid_after_utc - now
    if left.total_seconds() <= 0:
        return Check("tls", "fail", f"{cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if left < dt.timedelta(days=CERT_MIN_DAYS):
        return Check("tls", "fail", f"{cert_path} expires in {left.days} days "
                     f"({cert.not_valid_after_utc:%Y-%m-%d}); renew it")
    return Check("tls", "ok", f"{cert_path} valid until {cert.not_valid_after_utc:%Y-%m-%d} "
                 f"({left.days} days)")


def check_models(config: AppConfig) -> list[Check]:
    from models.manifest import MANIFEST_NAME
    from models.registry import ModelNotPrepared, check_model, model_dir

    checks = []
    for name in config.tier_names:
        tier = config.tiers[name]
        try:
            folder = model_dir(config, tier)
        except ModelNotPrepared as exc:
            checks.append(Check(f"model {name}", "fail", str(exc)))
            continue
        if not (folder / MANIFEST_NAME).exists():
            checks.append(Check(f"model {name}", "warn", f"{folder} has no manifest: an "
                                "operator's own folder, not verified"))
            continue
        problems = check_model(folder)
        checks.append(Check(f"model {name}", "fail" if problems else "ok",
                            f"{folder}: " + ("; ".join(problems) if problems
                                             else "every file matches its sha256")))
    return checks


def run_checks(config: AppConfig) -> list[Check]:
    return [check_gpu(config), check_port(config), *check_secret_files(config),
            check_tls(config), *check_models(config)]


def report(checks: list[Check]) -> tuple[str, int]:
    width = max(len(c.name) for c in checks)
    lines = [f"[{c.status:4s}] {c.name.ljust(width)}  {c.detail}" for c in checks]
    failed = sum(c.status == "fail" for c in checks)
    lines.append(f"{failed} failed, {sum(c.status == 'warn' for c in checks)} warnings")
    return "\n".join(lines), 1 if failed else 0
