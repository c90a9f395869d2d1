"""Start a real appliance (Ray Serve + two vLLM CPU engines) for a benchmark, and stop it."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CONFIG = """
[server]
port = {port}
[models]
root = "{models}"
[limits]
max_pending_per_tier = 4096
[lora]
root = "{work}/adapters"
[store]
enabled = false
[tiers.small]
cpu_kvcache_space_gib = 2
[tiers.large]
cpu_kvcache_space_gib = 1
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def appliance() -> Iterator[tuple[str, Path]]:
    """(base URL, work folder) of a running appliance on loopback, auth off."""
    work = Path(tempfile.mkdtemp(prefix="onlycs-perf-"))
    port = _free_port()
    config = work / "config.toml"
    config.write_text(CONFIG.format(port=port, models=REPO / "var" / "models", work=work))
    log = (work / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "appliance.cli", "serve", "--config",
                                str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=work)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"appliance exited; see {work / 'serve.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("appliance not ready in 900 s")
            time.sleep(2)
        yield url, work
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(180)
        log.close()
