"""`onlycs models prepare/verify` on the real bundled GGUF (no Ray needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.manifest import MANIFEST_NAME

pytestmark = pytest.mark.integration


def _onlycs(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_prepare_then_verify_then_detect_tampering(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[models]\nroot = "models"\n')
    prepared = _onlycs("models", "prepare", cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    assert "de-quantizing" in prepared.stderr  # progress is shown
    folder = tmp_path / "models" / "smollm2-135m-instruct"
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(manifest["files"])
    config = json.loads((folder / "config.json").read_text())
    assert config.get("quantization_config") is None
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]

    assert _onlycs("models", "verify", cwd=tmp_path).returncode == 0
    again = _onlycs("models", "prepare", cwd=tmp_path)
    assert "already prepared and verified" in again.stderr

    with (folder / "model.safetensors").open("r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xff\xff\xff\xff")
    broken = _onlycs("models", "verify", cwd=tmp_path)
    assert broken.returncode == 1
    assert "model.safetensors: sha256 mismatch" in broken.stderr


def test_serve_refuses_an_exposed_or_wrong_master_key(tmp_path: Path) -> None:
    models = Path(__file__).resolve().parents[2] / "var" / "models"
    (tmp_path / "config.toml").write_text(
        f'[models]\nroot = "{models}"\n[store]\npath = "c.db"\nmaster_key_file = "m.key"\n')
    key = tmp_path / "m.key"
    key.write_text("11" * 32 + "\n")
    key.chmod(0o644)
    exposed = _onlycs("serve", "--config", "config.toml", cwd=tmp_path)
    assert exposed.returncode == 2
    assert "permissions 0644 are too wide" in exposed.stderr
    key.chmod(0o600)
    assert _onlycs("conversations", "export", "--session", "x", cwd=tmp_path).returncode == 2
    key.write_text("22" * 32 + "\n")  # not the key that sealed c.db's data keys
    wrong = _onlycs("serve", "--config", "config.toml", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "wrong master key" in wrong.stderr
