"""The encrypted conversation store, written through the real API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from kernel.processes import wait_until
from tests.integration.conftest import Appliance

pytestmark = pytest.mark.integration

SECRET = "my card 6222020200998877665 and phone 13912345678"


def _db(appliance: Appliance) -> str:
    return str(appliance.config_path.parent / "conversations.db")


def _export(appliance: Appliance, session: str) -> list[dict]:
    done = appliance.onlycs("conversations", "export", "--session", session)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["messages"]


def _chat(appliance: Appliance, session: str, text: str, **extra: object) -> httpx.Response:
    return appliance.http().post("/v1/chat/completions", headers={"x-session-id": session},
                                 json={"model": "small", "max_tokens": 8, **extra,
                                       "messages": [{"role": "system", "content": "Be formal."},
                                                    {"role": "user", "content": text}]})


def test_turns_are_stored_encrypted_and_exported_for_an_admin(appliance: Appliance) -> None:
    session = f"enc-{uuid.uuid4().hex[:8]}"
    first = _chat(appliance, session, SECRET)
    assert first.status_code == 200 and first.headers["x-onlycs-session"] == session
    streamed = _chat(appliance, session, "and my refund?", stream=True)
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")

    messages = _export(appliance, session)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[1]["content"] == SECRET
    assert messages[2]["content"] == first.json()["choices"][0]["message"]["content"]
    assert messages[3]["content"] == "and my refund?" and messages[4]["content"]

    raw = b"".join(Path(path).read_bytes() for path in (_db(appliance), _db(appliance) + "-wal")
                   if os.path.exists(path))
    for plain in (SECRET, "6222020200998877665", "13912345678", "Be formal."):
        assert plain.encode() not in raw


def test_user_field_names_the_session_and_bad_ids_are_refused(appliance: Appliance) -> None:
    session = f"user-{uuid.uuid4().hex[:8]}"
    reply = appliance.openai().chat.completions.with_raw_response.create(
        model="small", max_tokens=4, user=session, messages=[{"role": "user", "content": "hi"}])
    assert reply.headers["x-onlycs-session"] == session
    assert [m["role"] for m in _export(appliance, session)] == ["user", "assistant"]
    bad = _chat(appliance, "../../etc/passwd", "hi")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-session-id"


def test_tampered_record_is_reported_not_returned(appliance: Appliance) -> None:
    session = f"tamper-{uuid.uuid4().hex[:8]}"
    assert _chat(appliance, session, "original words").status_code == 200
    db = sqlite3.connect(_db(appliance), timeout=30)
    # Stored under the calling key: `<key id>/<session id>`.
    stored, sealed = db.execute(
        "SELECT session_id, ciphertext FROM messages WHERE substr(session_id, -?) = ? "
        "AND seq = 2", (len(session) + 1, f"/{session}")).fetchone()
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    with db:
        db.execute("UPDATE messages SET ciphertext = ? WHERE session_id = ? AND seq = 2",
                   (flipped, stored))
    db.close()
    done = appliance.onlycs("conversations", "export", "--session", session)
    assert done.returncode == 2
    assert "message 2: ciphertext failed authentication" in done.stderr
    assert "original words" not in done.stdout + done.stderr


def test_a_store_locked_by_another_process_gets_503s_never_a_hang(
        appliance: Appliance) -> None:
    """Another process (`purge`, `rotate-key`, a backup) holds the write lock for 10 s while
    chats arrive: each gets its answer or a 503 with Retry-After, none hangs, and serving
    resumes when the lock goes."""
    sessions = [f"locked-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    holder = sqlite3.connect(_db(appliance), isolation_level=None, timeout=30)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(len(sessions)) as pool:
            answers = list(pool.map(lambda s: _chat(appliance, s, "Are you open today?"),
                                    sessions))
        time.sleep(max(0.0, 10 - (time.monotonic() - started)))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for response in answers:
        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            assert response.json()["error"]["code"] == "store_busy"
            assert int(response.headers["retry-after"]) >= 1
    assert any(r.status_code == 503 for r in answers)  # the lock was really in the way
    after = f"unlocked-{uuid.uuid4().hex[:8]}"
    assert _chat(appliance, after, "And tomorrow?").status_code == 200
    assert [m["role"] for m in _export(appliance, after)] == ["system", "user", "assistant"]


def _router_process(appliance: Appliance) -> psutil.Process:
    for proc in psutil.Process(appliance.process.pid).children(recursive=True):
        if "ServeReplica:onlycs:router" in " ".join(proc.cmdline()):
            return proc
    raise AssertionError("no router replica process found")


def test_sigkill_of_the_router_mid_burst_loses_no_acknowledged_turn(
        appliance: Appliance) -> None:
    router = _router_process(appliance)
    sessions = [f"kill-{uuid.uuid4().hex[:8]}" for _ in range(24)]

    async def one(client: httpx.AsyncClient, session: str, tokens: int) -> httpx.Response:
        return await client.post("/v1/chat/completions", headers={"x-session-id": session},
                                 json={"model": "small", "max_tokens": tokens,
                                       "ignore_eos": True, "messages": [
                                           {"role": "user", "content": f"question of {session}"}]})

    async def burst() -> list:
        async with httpx.AsyncClient(base_url=appliance.base_url, verify=appliance.trust(),
                                     timeout=120, headers={
                                         "authorization": f"Bearer {appliance.admin_key}"}
                                     ) as client:
            # Short answers finish (acknowledged) while long ones are still generating.
            tasks = [asyncio.create_task(one(client, s, 4 if i % 2 == 0 else 160))
                     for i, s in enumerate(sessions)]
            while sum(t.done() for t in tasks) < 3:
                await asyncio.sleep(0.05)
            os.kill(router.pid, signal.SIGKILL)
            return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(burst())
    acknowledged = {s: r for s, r in zip(sessions, results, strict=True)
                    if isinstance(r, httpx.Response) and r.status_code == 200}
    assert acknowledged, "no request finished before the kill"
    assert len(acknowledged) < len(sessions), "the kill came too late to cut anything"

    # Ray Serve replaces the dead replica; with direct ingress nothing listens meanwhile.
    wait_until(lambda: appliance.http(None).get("/readyz").status_code == 200, timeout_s=180,
               ignore=(httpx.TransportError,), what="the router replica back")
    for session, response in acknowledged.items():
        messages = _export(appliance, session)
        assert [m["role"] for m in messages] == ["user", "assistant"], session
        assert messages[0]["content"] == f"question of {session}"
        assert messages[1]["content"] == response.json()["choices"][0]["message"]["content"]
