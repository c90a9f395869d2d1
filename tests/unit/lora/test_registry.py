from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lora.registry import AdapterError, validate
from models.manifest import write_manifest

BASE = "ab" * 32


def _adapter(root: Path, name: str = "kb", rank: int = 8, base: str = BASE) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank}))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    write_manifest(folder, {"kind": "onlycs-lora-adapter", "base_model_sha256": base,
                            "rank": rank})
    return folder


def _check(root: Path, folder: str, name: str = "kb") -> Path:
    return validate(root, name, folder, base_sha256=BASE, max_rank=16)


def test_a_good_adapter_passes(tmp_path: Path) -> None:
    assert _check(tmp_path, str(_adapter(tmp_path))) == (tmp_path / "kb").resolve()
    assert _check(tmp_path, "kb") == (tmp_path / "kb").resolve()  # relative to the root


@pytest.mark.parametrize(("setup", "message"), [
    (lambda root: _adapter(root, rank=64), "rank 64 exceeds"),
    (lambda root: _adapter(root, base="cd" * 32), "another base model"),
    (lambda root: (root / "kb").mkdir(), "not an adapter"),
    (lambda root: (_adapter(root) / "adapter_model.safetensors").unlink(), "incomplete"),
])
def test_bad_adapters_are_refused_with_the_reason(tmp_path: Path, setup, message) -> None:
    setup(tmp_path)
    with pytest.raises(AdapterError, match=message):
        _check(tmp_path, "kb")


def test_no_escape_from_the_root(tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    root.mkdir()
    outside = _adapter(tmp_path, "elsewhere")
    with pytest.raises(AdapterError, match="inside the adapters root"):
        _check(root, "../elsewhere")
    with pytest.raises(AdapterError, match="inside the adapters root"):
        _check(root, str(outside))
    os.symlink(outside, root / "link")
    with pytest.raises(AdapterError, match="inside the adapters root"):
        _check(root, "link")
    inner = _adapter(root, "kb2")
    os.symlink(outside / "adapter_config.json", inner / "extra.json")
    with pytest.raises(AdapterError, match="links outside"):
        _check(root, "kb2", name="kb2")
    with pytest.raises(AdapterError, match="adapter name"):
        _check(root, "kb2", name="../kb2")
