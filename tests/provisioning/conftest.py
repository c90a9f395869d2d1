"""One air-gapped bundle per session, shared by the installer's end-to-end test and the
roles' molecule scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.bundle import build
from kernel.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    return build(load_config(REPO / "config.example.toml"), out, step=lambda m: None)
