"""One real appliance per test session: `onlycs serve` with Ray Serve and three vLLM CPU
engines on the bundled model (the shipped `small` and `large` tiers, small's engine in the
router's process as shipped, and a third named only here, see test_three_tiers.py, whose
engine runs in a replica of its own), started as the operator would start it."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from kernel.processes import ProcessExited, managed_process, wait_until
from tests.engine_settings import EAGER_LARGE_TIER
from tests.platform_requests import channels_toml
from tests.platform_server import PlatformServer, start_platform_server

REPO = Path(__file__).resolve().parents[2]
MODELS_ROOT = REPO / "var" / "models"
START_TIMEOUT_S = 900
DEFAULT_MAX_TOKENS = 24
EXTRA_TIER = "kb"

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
max_pending_per_tier = 40
admission_wait_s = 2
max_waiting_per_tier = 2
[models]
root = "{models_root}"
[tiers.small]
enable_lora = true
[tiers.large]
[tiers.{extra_tier}]
max_num_seqs = 8
engine_args = {{ enforce_eager = true }}
[logging]
dir = "{log_dir}"
[security]
auth = "on"
keys_file = "{workdir}/keys.json"
max_body_bytes = 262144
[lora]
root = "{workdir}/adapters"
[store]
path = "{workdir}/conversations.db"
master_key_file = "{workdir}/master.key"
[tls]
enabled = true
cert_file = "{workdir}/tls/server.pem"
key_file = "{workdir}/tls/server.key"
""" + EAGER_LARGE_TIER


@dataclass
class Appliance:
    """The running appliance: HTTPS only (TLS 1.3), API keys required."""

    base_url: str
    process: subprocess.Popen
    log_path: Path
    config_path: Path
    ca_file: Path
    client_key: str
    admin_key: str
    platform: PlatformServer

    @property
    def log_dir(self) -> Path:
        return self.log_path.parent / "log"

    def http(self, key: str | None = "client") -> httpx.Client:
        """An HTTPS client trusting the test CA, sending the client key unless told."""
        chosen = {"client": self.client_key, "admin": self.admin_key}.get(key, key)
        headers = {"authorization": f"Bearer {chosen}"} if chosen else {}
        return httpx.Client(base_url=self.base_url, verify=self.trust(), headers=headers,
                            timeout=300)

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def openai(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=key or self.client_key,
                             max_retries=0, http_client=self.http(None))

    def async_openai(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.base_url}/v1", api_key=key or self.client_key, max_retries=0,
            timeout=300, http_client=httpx.AsyncClient(verify=self.trust(), timeout=300))

    def tier_stats(self, tier: str) -> dict:
        return self.http().get("/readyz").json()["tiers"][tier]

    def onlycs(self, *args: str) -> subprocess.CompletedProcess:
        """The `onlycs` CLI against this appliance's config."""
        return onlycs_cli(*args, "--config", str(self.config_path))


def onlycs_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO)


def create_key(config: Path, name: str, *extra: str) -> str:
    made = onlycs_cli("keys", "create", "--name", name, *extra, "--config", str(config))
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(app: Appliance) -> bool:
    return app.http(None).get("/readyz", timeout=10).status_code == 200


def _wait_ready(app: Appliance) -> None:
    try:
        wait_until(lambda: _ready(app), timeout_s=START_TIMEOUT_S, interval_s=2,
                   ignore=(httpx.HTTPError,), alive=app.process, what="appliance ready")
    except (TimeoutError, ProcessExited) as exc:
        pytest.fail(f"{exc}; see {app.log_path}:\n{app.log_path.read_text()[-4000:]}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that stop the session's appliance run after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("stops_appliance") is not None)


@pytest.fixture(scope="session")
def platform() -> Iterator[PlatformServer]:
    """The local stand-in for the chat platforms' APIs (see tests/platform_server.py)."""
    server, runner = start_platform_server()
    yield server
    runner.should_exit = True


@pytest.fixture(scope="session")
def appliance(tmp_path_factory: pytest.TempPathFactory,
              platform: PlatformServer) -> Iterator[Appliance]:
    if not (MODELS_ROOT / "smollm2-135m-instruct" / "config.json").is_file():
        pytest.fail("bundled model not prepared: run `make models` (make test does)")
    workdir = tmp_path_factory.mktemp("appliance")
    port = free_port()
    config = workdir / "config.toml"
    config.write_text(CONFIG_TEMPLATE.format(port=port, models_root=MODELS_ROOT,
                                             default_max_tokens=DEFAULT_MAX_TOKENS,
                                             extra_tier=EXTRA_TIER,
                                             log_dir=workdir / "log", workdir=workdir)
                      + channels_toml(platform.base_url))
    made = onlycs_cli("tls", "self-signed", "--out", str(workdir / "tls"))
    assert made.returncode == 0, made.stderr
    client_key = create_key(config, "tests")
    admin_key = create_key(config, "tests-admin", "--scope", "admin")
    log_path = workdir / "serve.log"
    # SIGTERM to the launcher alone: it drains and stops Ray's whole tree itself.
    with managed_process([sys.executable, "-m", "appliance.cli", "serve", "--config",
                          str(config)], log_path=log_path, cwd=workdir, env=os.environ,
                         signal_to="process", stop_timeout_s=120) as process:
        app = Appliance(f"https://127.0.0.1:{port}", process, log_path, config,
                        workdir / "tls" / "ca.pem", client_key, admin_key, platform)
        _wait_ready(app)
        yield app
