"""The two mechanisms every long-running piece needs, written once for the code, the tests
and perf/: wait until a condition holds, and run a process whose whole tree goes when done."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Literal, TypeVar

import psutil

T = TypeVar("T")


class ProcessExited(RuntimeError):
    pass


def wait_until(check: Callable[[], T], *, timeout_s: float, what: str,
               interval_s: float = 1.0, ignore: tuple[type[BaseException], ...] = (),
               alive: subprocess.Popen | None = None) -> T:
    """`check()`'s first truthy result; TimeoutError naming `what` after `timeout_s`.

    Exceptions in `ignore` count as "not yet"; with `alive`, that process exiting first
    raises ProcessExited at once instead of waiting out the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        if alive is not None and alive.poll() is not None:
            raise ProcessExited(f"{what}: the process exited with {alive.returncode}")
        try:
            result = check()
        except ignore:
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not within {timeout_s:.0f} s")
        time.sleep(interval_s)


async def wait_until_async(check: Callable[[], T], *, timeout_s: float, what: str,
                           interval_s: float = 0.1) -> T:
    """`wait_until` for a coroutine: the event loop keeps running between checks."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not within {timeout_s:.0f} s")
        await asyncio.sleep(interval_s)
    return result


def stop_process(process: subprocess.Popen, *, signal_to: Literal["process", "group"],
                 timeout_s: float) -> None:
    """SIGTERM (to the process alone: an appliance drains and stops its tree itself; or to
    its session's group), SIGKILL to the group after `timeout_s`, then whatever is left of
    the tree that was there before (processes that left the group included)."""
    tree: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        tree = psutil.Process(process.pid).children(recursive=True)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if signal_to == "group":
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@contextlib.contextmanager
def managed_process(argv: list[str], *, log_path: Path, env: Mapping[str, str] | None = None,
                    cwd: Path | None = None, signal_to: Literal["process", "group"] = "group",
                    stop_timeout_s: float = 60) -> Iterator[subprocess.Popen]:
    """Run `argv` in a session of its own, output to `log_path`, stopped on exit."""
    with log_path.open("w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(env) if env is not None else None, cwd=cwd,
                                   start_new_session=True)
    try:
        yield process
    finally:
        stop_process(process, signal_to=signal_to, timeout_s=stop_timeout_s)
