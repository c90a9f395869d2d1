"""The `onlycs` Python client against the running appliance: sessions, personas,
streaming, the async variant, typed errors and retries that honour Retry-After."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from kernel.config import AppConfig
from kernel.processes import wait_until_async
from onlycs import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    NotFoundError,
    RateLimitError,
)
from tests.integration.conftest import REPO, Appliance, create_key

pytestmark = pytest.mark.integration

PERSONAS = AppConfig().sessions.personas


def _client(appliance: Appliance, key: str | None = None, max_tokens: int = 16,
            **options: object) -> Client:
    return Client(appliance.base_url, key or appliance.client_key, verify=str(appliance.ca_file),
                  max_tokens=max_tokens, **options)


def _export(appliance: Appliance, session: str) -> list[dict]:
    done = appliance.onlycs("conversations", "export", "--session", session)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["messages"]


def test_five_line_integration_keeps_the_session(appliance: Appliance) -> None:
    user = f"sdk-{time.time_ns()}"
    with _client(appliance) as client:
        first = client.send(user, "Hi, I ordered a desk lamp.")
        second = client.chat(user, "When will it arrive?")
    assert first and second.text
    assert second.route and second.session_id == user
    stored = _export(appliance, user)
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "Hi, I ordered a desk lamp."), ("assistant", first),
        ("user", "When will it arrive?"), ("assistant", second.text)]


def test_named_persona_and_own_prompt(appliance: Appliance) -> None:
    npc_player, custom_user = f"npc-{time.time_ns()}", f"custom-{time.time_ns()}"
    with _client(appliance) as client:
        client.with_personality("game_npc").send(npc_player, "Who are you?")
        client.with_personality("You are a terse pirate. Answer in five words.").send(
            custom_user, "Where is the treasure?")
    first = _export(appliance, npc_player)[0]
    assert (first["role"], first["content"]) == ("system", PERSONAS["game_npc"].system)
    assert _export(appliance, custom_user)[0]["content"] == (
        "You are a terse pirate. Answer in five words.")


def test_stream_yields_the_answer_that_is_stored(appliance: Appliance) -> None:
    user = f"stream-{time.time_ns()}"
    # 48 tokens: the output filter holds a word until it can no longer be an e-mail
    # address's local part, and the sampled answer once began with a made-up word of 15
    # tokens ("Ryorigampseudo-homolozone-bambio."), so 16 tokens left as one piece.
    with _client(appliance, max_tokens=48) as client:
        pieces = list(client.with_model("small").stream(user, "Tell me about your shop."))
    assert len(pieces) > 1
    assert _export(appliance, user)[-1]["content"] == "".join(pieces)


def test_async_client_sends_and_streams(appliance: Appliance) -> None:
    user = f"async-{time.time_ns()}"

    async def talk() -> tuple[str, list[str]]:
        async with AsyncClient(appliance.base_url, appliance.client_key, max_tokens=12,
                               verify=str(appliance.ca_file)) as client:
            said = await client.send(user, "Hello there")
            pieces = [p async for p in client.stream(user, "And the weather?")]
            return said, pieces

    said, pieces = asyncio.run(talk())
    assert said and pieces
    stored = _export(appliance, user)
    assert [m["content"] for m in stored if m["role"] == "assistant"] == [said, "".join(pieces)]


def test_typed_errors(appliance: Appliance) -> None:
    with _client(appliance, key="ocs-not-a-real-key") as bad, \
            pytest.raises(AuthenticationError) as auth:
        bad.send("u1", "hello")
    assert auth.value.status == 401 and auth.value.code == "invalid_api_key"
    with _client(appliance) as client:
        with pytest.raises(NotFoundError):
            client.with_model("gigantic").send("u1", "hello")
        with pytest.raises(BadRequestError) as persona:
            client.with_personality("no_such_persona").send("u1", "hello")
        assert persona.value.param == "persona"
        with pytest.raises(ValueError, match="user_id"):
            client.send("spaces are not ids", "hello")


def test_rate_limit_error_carries_retry_after(appliance: Appliance) -> None:
    key = create_key(appliance.config_path, f"sdk-limited-{time.time_ns()}", "--rpm", "1")
    with _client(appliance, key=key, max_retry_wait_s=5) as client:
        client.send("limited-user", "one")
        started = time.monotonic()
        with pytest.raises(RateLimitError) as limited:
            client.send("limited-user", "two")
    # A minute-long wait is beyond max_retry_wait_s: raised at once, not slept through.
    assert limited.value.retry_after_s and limited.value.retry_after_s > 5
    assert time.monotonic() - started < limited.value.retry_after_s


def test_overload_is_retried_after_retry_after(appliance: Appliance,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Fill the small tier to its admission bound; the client's request is refused with
    503 + Retry-After, waits, and succeeds once the tier has room again."""
    bound = 40
    hold = {"model": "small", "max_tokens": 2000, "ignore_eos": True, "stream": True,
            "messages": [{"role": "user", "content": "Tell me a very long story."}]}
    user = f"retry-{time.time_ns()}"

    async def scenario() -> str:
        async with httpx.AsyncClient(base_url=appliance.base_url, timeout=300,
                                     verify=appliance.trust(),
                                     headers={"authorization": f"Bearer {appliance.admin_key}"},
                                     limits=httpx.Limits(max_connections=bound + 4)) as http:
            async def open_stream() -> tuple[httpx.Response, AsyncIterator[str]]:
                request = http.build_request("POST", "/v1/chat/completions", json=hold)
                response = await http.send(request, stream=True)
                lines = response.aiter_lines()  # kept alive: closing it would disconnect
                async for line in lines:
                    if line.startswith("data:"):
                        break
                return response, lines

            streams = await asyncio.gather(*(open_stream() for _ in range(bound)))
            async with AsyncClient(appliance.base_url, appliance.client_key, max_tokens=8,
                                   verify=str(appliance.ca_file), model="small") as client:
                sending = asyncio.create_task(client.send(user, "Are you there?"))
                # Refused while the tier is full, and waiting as Retry-After says.
                await wait_until_async(lambda: _retried(caplog), timeout_s=60,
                                       what="a 503 retry by the client")
                assert not sending.done()
                for response, _ in streams:
                    await response.aclose()
                return await asyncio.wait_for(sending, 120)

    with caplog.at_level(logging.INFO, logger="onlycs"):
        answer = asyncio.run(scenario())
    assert answer
    assert _retried(caplog)


def _retried(caplog: pytest.LogCaptureFixture) -> bool:
    return any("HTTP 503, retrying in" in r.getMessage() for r in caplog.records)


def test_npc_example_script_runs_a_conversation(appliance: Appliance) -> None:
    player = f"player-{time.time_ns()}"
    done = subprocess.run(
        [sys.executable, "examples/npc_chat.py", appliance.base_url, "--ca",
         str(appliance.ca_file), "--player", player],
        input="Good evening, lamplighter.\nWhat do you light?\nquit\n", text=True,
        capture_output=True, timeout=300, cwd=REPO,
        env={"ONLYCS_API_KEY": appliance.client_key, "PATH": "/usr/bin:/bin",
             "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("Old Tomas> ")]
    assert len(lines) == 2 and all(len(line) > len("Old Tomas> ") for line in lines)
    stored = _export(appliance, player)
    assert stored[0]["content"] == PERSONAS["game_npc"].system
    assert [m["content"] for m in stored if m["role"] == "user"] == [
        "Good evening, lamplighter.", "What do you light?"]
