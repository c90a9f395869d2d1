"""SIGTERM drains: started requests finish, new ones get 503 + Retry-After, and the
whole process tree (Ray, replicas, EngineCore workers) is gone afterwards.

It stops the session's appliance, so it is marked `stops_appliance`: the integration
conftest orders such tests after all others.
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
import psutil
import pytest

from kernel.processes import wait_until
from tests.integration.conftest import Appliance

pytestmark = [pytest.mark.integration, pytest.mark.stops_appliance]

# Long enough (several seconds here) to still be generating when SIGTERM arrives, short
# enough to finish well inside the drain timeout (60 s) on 2 cores: 500 tokens from the
# eager large tier took longer than that.
WORK = {"model": "large", "max_tokens": 200, "ignore_eos": True,
        "messages": [{"role": "user", "content": "Write a story about a lighthouse."}]}


def test_sigterm_drains_and_stops_the_tree(appliance: Appliance) -> None:
    url = "/v1/chat/completions"
    tree = psutil.Process(appliance.process.pid).children(recursive=True)
    assert len(tree) > 5, "expected Ray, replicas and engine processes"
    results: dict[str, httpx.Response] = {}
    worker = threading.Thread(target=lambda: results.update(
        r=appliance.http().post(url, json=WORK)))
    worker.start()
    wait_until(lambda: appliance.tier_stats("large")["unfinished_requests"] > 0, timeout_s=60,
               interval_s=0.1, what="the request reaching the engine")

    appliance.process.send_signal(signal.SIGTERM)
    wait_until(lambda: appliance.http().get("/readyz", timeout=30).status_code != 200,
               timeout_s=60, interval_s=0.1, what="readiness dropping after SIGTERM")
    refused = appliance.http().post(url, json=WORK)
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) > 0
    assert refused.json()["error"]["code"] == "draining"

    worker.join(300)
    finished = results["r"]
    assert finished.status_code == 200
    assert finished.json()["usage"]["completion_tokens"] == WORK["max_tokens"]

    assert appliance.process.wait(180) == 0
    time.sleep(1)
    alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left running: {[p.name() for p in alive]}"
