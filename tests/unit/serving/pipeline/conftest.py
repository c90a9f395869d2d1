"""A request chain over three fake tiers (tests/fake_tiers.py): config from a temp folder,
a real encrypted store, no Ray, no vLLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernel.config import AppConfig
from kernel.crypto import create_master_key
from serving.access import Caller
from serving.pipeline.chain import RequestPipeline
from tests.fake_tiers import LocalHandle, local_tier

TIERS = ("small", "large", "kb")
CLIENT = Caller("key-a", "client")


def make_config(tmp_path: Path, **sections: Any) -> AppConfig:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    key = tmp_path / "master.key"
    if not key.exists():
        create_master_key(key)
    raw: dict[str, Any] = {
        # Three engines, each its own fake: no tier shares another's.
        "tiers": {name: {"model": str(model), "share_engine_with": ""} for name in TIERS},
        "store": {"path": str(tmp_path / "c.db"), "master_key_file": str(key)},
        "security": {"keys_file": str(tmp_path / "keys.json"),
                     "admin_key_file": str(tmp_path / "var" / "admin.key")},
        "lora": {"root": str(tmp_path / "adapters")},
        # The chain's own tests run without the knowledge base; test_ground.py turns it on.
        "knowledge": {"enabled": False, "dir": str(tmp_path / "kb")},
    }
    for name, values in sections.items():
        raw[name] = raw.get(name, {}) | values
    return AppConfig.model_validate(raw)


@pytest.fixture
async def tiers() -> dict[str, LocalHandle]:
    return {name: await local_tier(name) for name in TIERS}


@pytest.fixture
def pipeline(tmp_path: Path, tiers: dict[str, LocalHandle]) -> RequestPipeline:
    return RequestPipeline(make_config(tmp_path), tiers)
