"""One real appliance per test session: `onlycs serve` with Ray Serve and two vLLM CPU
engines on the bundled model, started as the operator would start it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS_ROOT = REPO / "var" / "models"
START_TIMEOUT_S = 900
DEFAULT_MAX_TOKENS = 24

CONFIG_TEMPLATE = """
profile = "cpu"
[server]
host = "127.0.0.1"
port = {port}
drain_timeout_s = 60
[limits]
default_max_tokens = {default_max_tokens}
max_tokens_limit = 2048
max_n = 4
[models]
root = "{models_root}"
[routing]
long_message_chars = 200
[tiers.small]
cpu_kvcache_space_gib = 1
enable_lora = true
[tiers.large]
cpu_kvcache_space_gib = 1
[logging]
dir = "{log_dir}"
"""


@dataclass
class Appliance:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def log_dir(self) -> Path:
        return self.log_path.parent / "log"

    def openai(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key="unused", max_retries=0,
                             **kwargs)

    def async_openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.base_url}/v1", api_key="unused",
                                  max_retries=0, timeout=300)

    def tier_stats(self, tier: str) -> dict:
        return httpx.get(f"{self.base_url}/readyz", timeout=30).json()["tiers"][tier]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(app: Appliance) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            pytest.fail(f"onlycs serve exited with {app.process.returncode}; "
                        f"see {app.log_path}:\n{app.log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{app.base_url}/readyz", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    pytest.fail(f"appliance not ready after {START_TIMEOUT_S} s; see {app.log_path}")


@pytest.fixture(scope="session")
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    if not (MODELS_ROOT / "smollm2-135m-instruct" / "config.json").is_file():
        pytest.fail("bundled model not prepared: run `make models` (make test does)")
    workdir = tmp_path_factory.mktemp("appliance")
    port = free_port()
    config = workdir / "config.toml"
    config.write_text(CONFIG_TEMPLATE.format(port=port, models_root=MODELS_ROOT,
                                             default_max_tokens=DEFAULT_MAX_TOKENS,
                                             log_dir=workdir / "log"))
    log_path = workdir / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "serve", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=os.environ.copy(),
            start_new_session=True)
    app = Appliance(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_ready(app)
        yield app
    finally:
        if process.poll() is None:
            tree = psutil.Process(process.pid).children(recursive=True)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            for proc in tree:
                if proc.is_running():
                    proc.kill()
