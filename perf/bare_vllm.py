"""The bare vLLM OpenAI server (`python -m vllm.entrypoints.openai.api_server`) with the
small tier's exact engine settings: the baseline the appliance must keep up with."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from kernel.config import AppConfig
from kernel.processes import managed_process, wait_until
from serving.app import engine_options, tier_env
from serving.vllm_engine import engine_cli_args
from serving.vllm_plugin import ENV as ENGINE_WAIT_ENV


def command(config: AppConfig, port: int, stock: bool = False) -> tuple[list[str], dict[str, str]]:
    """The api_server command line and environment for the small tier's engine.

    `stock`: vLLM's own CPU defaults instead of the appliance's tuning (its scheduler spins
    on one reserved core; the model computes on the other)."""
    options = engine_options(config, "small", config.tiers["small"])
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1",
            "--port", str(port), "--disable-uvicorn-access-log", *engine_cli_args(options)]
    env = {**os.environ, **tier_env(config, config.tiers["small"])}
    if stock:
        env.pop(ENGINE_WAIT_ENV, None)
        env["VLLM_CPU_OMP_THREADS_BIND"] = "auto"
    return argv, env


@contextlib.contextmanager
def bare_vllm(config: AppConfig, port: int, log_path: Path,
              stock: bool = False) -> Iterator[str]:
    argv, env = command(config, port, stock)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200

    with managed_process(argv, log_path=log_path, env=env, signal_to="group") as process:
        wait_until(ready, timeout_s=600, ignore=(httpx.HTTPError,), alive=process,
                   what=f"bare vLLM ready (see {log_path})")
        yield url
