from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kernel.config import AppConfig, ServerConfig
from kernel.keys import KeyStore
from kernel.ratelimit import RateLimiter


def test_keys_are_verified_hashed_and_revocable(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, record = store.create("crm", "client", rpm=10)
    assert key.startswith(f"ocs-{record.id}-")
    assert store.verify(key) == record
    assert store.verify(key + "x") is None
    assert store.verify("ocs-deadbeef-" + key.split("-", 2)[2]) is None
    assert store.verify("Bearer nonsense") is None
    text = (tmp_path / "keys.json").read_text()
    assert key.split("-", 2)[2] not in text
    assert stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode) == 0o600
    with pytest.raises(ValueError, match="already exists"):
        store.create("crm", "client")
    store.revoke("crm")
    assert store.verify(key) is None
    with pytest.raises(ValueError, match="no active key"):
        store.revoke("crm")


def test_token_buckets_refuse_then_say_when_to_retry() -> None:
    limiter = RateLimiter(default_rpm=2, default_tpm=100)
    assert limiter.admit("a", 10) == 0
    assert limiter.admit("a", 10) == 0
    wait = limiter.admit("a", 10)
    assert 0 < wait <= 30  # one request refills in 60 s / 2
    assert limiter.admit("b", 10) == 0  # another key is unaffected
    assert limiter.admit("c", 101) == float("inf")  # can never fit
    assert limiter.admit("d", 60, tpm=50) == float("inf")


def test_auth_defaults_to_on_off_loopback() -> None:
    assert not AppConfig().auth_required
    assert AppConfig(server=ServerConfig(host="0.0.0.0")).auth_required
