"""A client that disconnects mid-stream aborts its generation in the engine."""

from __future__ import annotations

import contextlib

import pytest

from kernel.processes import wait_until
from tests.integration.conftest import EXTRA_TIER, Appliance

pytestmark = pytest.mark.integration

# Long enough that, unaborted, the engine would still be generating for a minute.
LONG = {"model": "small", "max_tokens": 2000, "stream": True, "ignore_eos": True,
        "messages": [{"role": "user", "content": "Write a very long story."}]}


def _wait_for_unfinished(app: Appliance, tier: str, want: int, deadline_s: float) -> int:
    with contextlib.suppress(TimeoutError):  # the callers assert on the count
        wait_until(lambda: app.tier_stats(tier)["unfinished_requests"] == want,
                   timeout_s=deadline_s, interval_s=0.25, what="the engine's unfinished count")
    return app.tier_stats(tier)["unfinished_requests"]


# small's engine runs in the router's process, the extra tier's in a replica of its own.
@pytest.mark.parametrize("tier", ["small", EXTRA_TIER])
def test_disconnect_aborts_generation(appliance: Appliance, tier: str) -> None:
    assert _wait_for_unfinished(appliance, tier, 0, 60) == 0
    aborted_before = appliance.tier_stats(tier)["aborted_requests"]
    client = appliance.http()
    response = client.send(client.build_request("POST", "/v1/chat/completions",
                                                json=LONG | {"model": tier}), stream=True)
    assert response.status_code == 200
    lines = response.iter_lines()
    received = 0
    while received < 5:
        received += next(lines).startswith("data:")
    # The engine is generating for this request now...
    assert appliance.tier_stats(tier)["unfinished_requests"] == 1
    response.close()
    client.close()
    # ...and once the client is gone it stops: the request leaves the engine long
    # before its 2000 tokens could have been produced.
    assert _wait_for_unfinished(appliance, tier, 0, 30) == 0
    assert appliance.tier_stats(tier)["aborted_requests"] == aborted_before + 1
