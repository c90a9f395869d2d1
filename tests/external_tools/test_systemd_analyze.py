"""The systemd units: `systemd-analyze verify` prints nothing, and the hardening is there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

UNITS = sorted((Path(__file__).resolve().parents[2] / "systemd").glob("*.service"))
INSTALLED_BIN = "/opt/onlycs/venv/bin/"
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
             "ProtectHome": "yes", "CapabilityBoundingSet": "", "User": "onlycs"}

def _verify(unit_text: str, name: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # The units name the installed venv; verify checks that ExecStart exists, so point
    # them at this checkout's venv, which has the same console scripts.
    local = unit_text.replace(INSTALLED_BIN, str(Path(sys.executable).parent) + "/")
    path = tmp_path / name
    path.write_text(local)
    return subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                          text=True, timeout=120)


def _settings(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines()
             if "=" in line and not line.startswith(("#", " ")))
    return {key.strip(): value.strip() for key, value in pairs}


def test_there_are_units_for_the_appliance_and_ray() -> None:
    assert {u.name for u in UNITS} == {"onlycs.service", "onlycs-ray-head.service",
                                       "onlycs-ray-worker.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_verify_prints_nothing(unit: Path, tmp_path: Path) -> None:
    result = _verify(unit.read_text(), unit.name, tmp_path)
    assert result.returncode == 0 and result.stdout + result.stderr == ""


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_hardening_limits_and_journald(unit: Path) -> None:
    settings = _settings(unit.read_text())
    for key, value in HARDENING.items():
        assert settings.get(key) == value, key
    assert "/var/lib/onlycs" in settings["ReadWritePaths"]
    assert int(settings["LimitNOFILE"]) >= 65536
    assert settings["StandardOutput"] == "journal" and settings["Restart"] == "on-failure"


def test_appliance_stop_timeout_outlasts_the_drain() -> None:
    from kernel.config import AppConfig

    settings = _settings((UNITS[0].parent / "onlycs.service").read_text())
    assert settings["KillSignal"] == "SIGTERM"
    assert float(settings["TimeoutStopSec"]) > AppConfig().server.drain_timeout_s + 30


def test_a_broken_unit_is_reported(tmp_path: Path) -> None:
    text = (UNITS[0].parent / "onlycs.service").read_text()
    broken = text.replace("Type=exec", "Type=sometimes")
    result = _verify(broken, "onlycs.service", tmp_path)
    assert "service type" in (result.stdout + result.stderr).lower()
