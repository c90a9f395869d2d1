"""The engine-wait plugin and core binding that free the CPU core vLLM's scheduler spins on."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

from kernel.config import AppConfig
from serving.app import tier_env
from serving.cpu_threads import omp_threads_bind
from serving.vllm_plugin import ENV

PROBE = """
from vllm.distributed.device_communicators import shm_broadcast
from vllm.plugins import load_general_plugins
load_general_plugins()
print(shm_broadcast.sched_yield.__module__, shm_broadcast.sched_yield.__name__)
"""


def _probe(env_value: str | None) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if env_value is not None:
        env[ENV] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout.split()
    return out[-2], out[-1]


def test_plugin_is_registered_with_vllm() -> None:
    names = {e.value for e in entry_points(group="vllm.general_plugins")}
    assert "serving.vllm_plugin:register" in names


def test_vllm_loads_the_plugin_and_waiting_sleeps_only_when_asked() -> None:
    # vLLM's own plugin loader, in a fresh process as in EngineCore and the worker.
    assert _probe("0.01") == ("serving.vllm_plugin", "pause")
    module, name = _probe(None)
    assert module != "serving.vllm_plugin" and name == "sched_yield"


def test_tier_env_carries_the_wait_and_every_core() -> None:
    config = AppConfig()
    env = tier_env(config, config.tiers["small"])
    assert env[ENV] == str(config.tiers["small"].cpu_engine_wait_s)
    cores = sorted(os.sched_getaffinity(0))
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == ",".join(map(str, cores))
    assert omp_threads_bind("auto") == "auto" and omp_threads_bind("0-1") == "0-1"
    unset = AppConfig.model_validate({"tiers": {"small": {"cpu_engine_wait_s": None}}})
    assert ENV not in tier_env(unset, unset.tiers["small"])
