"""A client that disconnects mid-stream aborts its generation in the engine."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import Appliance

pytestmark = pytest.mark.integration

# Long enough that, unaborted, the engine would still be generating for a minute.
LONG = {"model": "small", "max_tokens": 2000, "stream": True, "ignore_eos": True,
        "messages": [{"role": "user", "content": "Write a very long story."}]}


def _wait_for_unfinished(app: Appliance, tier: str, want: int, deadline_s: float) -> int:
    deadline = time.monotonic() + deadline_s
    count = app.tier_stats(tier)["unfinished_requests"]
    while count != want and time.monotonic() < deadline:
        time.sleep(0.25)
        count = app.tier_stats(tier)["unfinished_requests"]
    return count


def test_disconnect_aborts_generation(appliance: Appliance) -> None:
    assert _wait_for_unfinished(appliance, "small", 0, 60) == 0
    aborted_before = appliance.tier_stats("small")["aborted_requests"]
    client = appliance.http()
    response = client.send(client.build_request("POST", "/v1/chat/completions", json=LONG),
                           stream=True)
    assert response.status_code == 200
    lines = response.iter_lines()
    received = 0
    while received < 5:
        received += next(lines).startswith("data:")
    # The engine is generating for this request now...
    assert appliance.tier_stats("small")["unfinished_requests"] == 1
    response.close()
    client.close()
    # ...and once the client is gone it stops: the request leaves the engine long
    # before its 2000 tokens could have been produced.
    assert _wait_for_unfinished(appliance, "small", 0, 30) == 0
    assert appliance.tier_stats("small")["aborted_requests"] == aborted_before + 1
