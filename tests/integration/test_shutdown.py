"""A stop drains: started requests finish, new ones get 503 + Retry-After, and the whole
process tree (Ray, replicas, EngineCore workers) is gone afterwards, whatever the state
(starting, serving, draining), even when the signal goes to the whole process group the way
Ctrl-C does (it used to reach Ray's raylet first and leave the engines running).

It stops the session's appliance, so it is marked `stops_appliance`: the integration
conftest orders such tests after all others.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import httpx
import psutil
import pytest

from kernel.processes import managed_process, wait_until
from tests.integration.conftest import Appliance, free_port

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

    os.killpg(appliance.process.pid, signal.SIGINT)  # Ctrl-C: the whole group
    wait_until(lambda: appliance.http().get("/readyz", timeout=30).status_code != 200,
               timeout_s=60, interval_s=0.1, what="readiness dropping after Ctrl-C")
    refused = appliance.http().post(url, json=WORK)
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) > 0
    assert refused.json()["error"]["code"] == "draining"
    os.killpg(appliance.process.pid, signal.SIGTERM)  # and again, to the group, mid-drain

    worker.join(300)
    finished = results["r"]
    assert finished.status_code == 200
    assert finished.json()["usage"]["completion_tokens"] == WORK["max_tokens"]

    assert appliance.process.wait(180) == 0
    time.sleep(1)
    alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left running: {[p.name() for p in alive]}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_group_signal_during_start_up_stops_every_process(appliance: Appliance, tmp_path,
                                                             signum: int) -> None:
    # After the session's appliance has stopped: the same config on another port.
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(appliance.config_path.read_text().replace(
        f"port = {appliance.base_url.rsplit(':', 1)[1]}", f"port = {port}"))
    before = {p.pid for p in _ray_and_engines()}
    with managed_process([sys.executable, "-m", "appliance.cli", "serve", "--config",
                          str(config)], log_path=tmp_path / "serve.log",
                         cwd=appliance.config_path.parent, env=os.environ, signal_to="process",
                         stop_timeout_s=120) as process:
        def started() -> list[psutil.Process]:
            tree = psutil.Process(process.pid).children(recursive=True)
            return tree if any(p.name() == "raylet" for p in tree) else []

        tree = wait_until(started, timeout_s=120, interval_s=0.2, ignore=(psutil.Error,),
                          what="Ray starting")
        os.killpg(process.pid, signum)
        assert process.wait(180) == 0, (tmp_path / "serve.log").read_text()[-3000:]
    time.sleep(1)
    # Also any started after the tree was listed (an engine core), orphaned or not.
    late = [p for p in _ray_and_engines() if p.pid not in before]
    alive = [p for p in [*tree, *late] if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left running: {[p.name() for p in alive]}"


def _ray_and_engines() -> list[psutil.Process]:
    names = ("VLLM", "ray::", "raylet", "gcs_server")
    return [p for p in psutil.process_iter(["name"])
            if p.info["name"] and p.info["name"].startswith(names)]
