"""`onlycs doctor` against real files, sockets and certificates on this box."""

from __future__ import annotations

import datetime as dt
import os
import socket
import stat
from pathlib import Path

import pytest

from appliance.doctor import (
    check_gpu,
    check_models,
    check_port,
    check_secret_files,
    check_tls,
    report,
    run_checks,
)
from appliance.tls import write_self_signed
from kernel.config import AppConfig
from models.manifest import write_manifest


def _config(tmp_path: Path, **sections: dict) -> AppConfig:
    base = {"models": {"root": str(tmp_path / "models")},
            "security": {"keys_file": str(tmp_path / "keys.json")},
            "store": {"master_key_file": str(tmp_path / "master.key")}}
    return AppConfig.model_validate(base | sections)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_port_in_use_fails_and_free_port_passes(tmp_path: Path) -> None:
    port = _free_port()
    config = _config(tmp_path, server={"port": port})
    assert check_port(config).status == "ok"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        check = check_port(config)
    assert check.status == "fail" and f"127.0.0.1:{port}" in check.detail


def test_secret_files_wider_than_0600_fail(tmp_path: Path) -> None:
    config = _config(tmp_path, server={"host": "0.0.0.0"})
    missing = {c.name: c for c in check_secret_files(config)}
    assert missing["keys file"].status == "fail"  # auth is on off loopback
    assert missing["master key"].status == "warn"
    for path in (tmp_path / "keys.json", tmp_path / "master.key"):
        path.write_text("{}")
        path.chmod(0o644)
    wide = {c.name: c for c in check_secret_files(config)}
    assert wide["keys file"].status == "fail" and "chmod 600" in wide["keys file"].detail
    assert wide["master key"].status == "fail"
    for path in (tmp_path / "keys.json", tmp_path / "master.key"):
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert all(c.status == "ok" for c in check_secret_files(config))


def _tls_config(tmp_path: Path, days: int) -> AppConfig:
    paths = write_self_signed(tmp_path / f"tls-{days}", ["localhost"], ["127.0.0.1"], days=days)
    return _config(tmp_path, tls={"enabled": True, "cert_file": str(paths["cert_file"]),
                                  "key_file": str(paths["key_file"])})


def test_certificates_valid_expiring_expired_and_mismatched(tmp_path: Path) -> None:
    assert check_tls(_tls_config(tmp_path, 365)).status == "ok"
    soon = check_tls(_tls_config(tmp_path, 10))
    assert soon.status == "fail" and "expires in" in soon.detail
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    assert "expired" in check_tls(_tls_config(tmp_path, 365), now=later).detail
    mixed = _tls_config(tmp_path, 365).model_copy(deep=True)
    other = _tls_config(tmp_path, 200)
    mismatched = _config(tmp_path, tls={"enabled": True, "cert_file": str(mixed.tls.cert_file),
                                        "key_file": str(other.tls.key_file)})
    assert "is not the key of" in check_tls(mismatched).detail
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    broken = _config(tmp_path, tls={"enabled": True, "cert_file": str(garbage),
                                    "key_file": str(other.tls.key_file)})
    assert check_tls(broken).status == "fail"


def test_models_verified_against_their_manifest(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert {c.status for c in check_models(config)} == {"fail"}  # nothing prepared
    folder = tmp_path / "models" / config.tiers["small"].model
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    assert check_models(config)[0].status == "warn"  # an operator's folder, no manifest
    write_manifest(folder, {"source": "test"})
    assert check_models(config)[0].status == "ok"
    (folder / "model.safetensors").write_bytes(b"tampered")
    check = check_models(config)[0]
    assert check.status == "fail" and "sha256 mismatch" in check.detail


def test_gpu_profile_without_a_driver_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert check_gpu(_config(tmp_path)).status == "skip"
    assert check_gpu(_config(tmp_path, profile="gpu")).status == "fail"


def test_gpu_seen_through_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fake: this machine has no GPU, so a stand-in nvidia-smi prints what the real one does.
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nif [ -n \"$1\" ]; then echo 'NVIDIA L40S, 550.54.15'; else "
                   "echo '| NVIDIA-SMI 550.54.15  Driver Version: 550.54.15  CUDA Version: "
                   "12.4 |'; fi\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    check = check_gpu(_config(tmp_path, profile="gpu"))
    assert check.status == "ok" and "NVIDIA L40S" in check.detail and "CUDA driver 12.4" in \
        check.detail


def test_report_exit_code_follows_failures(tmp_path: Path) -> None:
    checks = run_checks(_config(tmp_path, server={"port": _free_port()}))
    text, code = report(checks)
    assert code == 1 and "model small" in text  # nothing prepared under tmp_path
    ok_text, ok_code = report([c for c in checks if c.status != "fail"])
    assert ok_code == 0 and "0 failed" in ok_text
