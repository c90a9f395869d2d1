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


def test_budgets_of_many_callers_stay_bounded_and_a_busy_key_stays_limited() -> None:
    from kernel.ratelimit import RateLimiter

    limiter = RateLimiter(default_rpm=2, default_tpm=10_000, max_tracked=50)
    assert limiter.admit("busy", 1) == 0 and limiter.admit("busy", 1) == 0
    for i in range(1_000):  # e.g. made-up chat-channel users
        limiter.admit(f"forged-{i}", 1)
        limiter.admit("busy", 1)  # used all along: never the least recently used
    assert len(limiter._budgets) == 50
    assert limiter.admit("busy", 1) > 0
