from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from kernel.processes import ProcessExited, managed_process, wait_until, wait_until_async

# A parent that starts a child which ignores SIGTERM: what vLLM's workers did here.
STUBBORN = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_wait_until_returns_the_first_truthy_result_and_names_what_timed_out() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 2 and "done", timeout_s=5, interval_s=0.01,
                      what="the counter") == "done"
    with pytest.raises(TimeoutError, match="the flag not within"):
        wait_until(lambda: False, timeout_s=0.05, interval_s=0.01, what="the flag")


def test_wait_until_ignores_listed_errors_and_stops_when_the_process_dies() -> None:
    calls = itertools.count()

    def flaky() -> bool:
        if next(calls) < 2:
            raise ConnectionError("not yet")
        return True

    assert wait_until(flaky, timeout_s=5, interval_s=0.01, ignore=(ConnectionError,),
                      what="flaky")
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(ProcessExited, match="exited with 3"):
        wait_until(lambda: False, timeout_s=60, alive=dead, what="never")


async def test_the_async_wait_keeps_the_loop_running() -> None:
    started = time.monotonic()
    assert await wait_until_async(lambda: time.monotonic() - started > 0.05, timeout_s=5,
                                  what="50 ms")


@pytest.mark.parametrize("signal_to", ["process", "group"])
def test_managed_process_leaves_nothing_behind(tmp_path: Path, signal_to: str) -> None:
    log = tmp_path / "out.log"
    with managed_process([sys.executable, "-c", STUBBORN], log_path=log, signal_to=signal_to,
                         stop_timeout_s=1) as process:
        child_pid = int(wait_until(lambda: log.read_text().strip(), timeout_s=30,
                                   interval_s=0.05, what="the child's pid"))
        assert psutil.pid_exists(child_pid)
    assert process.poll() is not None
    wait_until(lambda: not psutil.pid_exists(child_pid)
               or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE,
               timeout_s=10, interval_s=0.05, what="the stubborn child gone")
