"""`onlycs serve`: start Ray and the app in the foreground, drain on SIGTERM.

Stopping takes the whole process tree down: vLLM's EngineCore and worker
processes outlive a plain SIGTERM to their parent, so whatever is left of this
process's descendants after Ray has shut down is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from types import FrameType
from typing import Any

import psutil

from appliance.config import AppConfig
from appliance.logs import ray_logging_env, serve_logging
from models.registry import check_model, model_dir
from serving.metrics import MULTIPROC_ENV

logger = logging.getLogger("onlycs.serve")

QUIET_ENV = {
    # An on-prem appliance phones nowhere.
    "RAY_USAGE_STATS_ENABLED": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
PROGRESS_EVERY_S = 15.0
DRAIN_POLL_S = 0.5


class _StopRequested(Exception):
    pass


def preflight(config: AppConfig) -> list[str]:
    """Problems that would make start-up fail later and less clearly."""
    problems = []
    for name in ("small", "large"):
        try:
            folder = model_dir(config, getattr(config.tiers, name))
        except RuntimeError as exc:
            problems.append(f"tiers.{name}.model: {exc}")
            continue
        problems += [f"tiers.{name}.model: {p}" for p in check_model(folder)]
    return problems


def _report_progress(started: float, done: threading.Event) -> None:
    from ray import serve

    while not done.wait(PROGRESS_EVERY_S):
        try:
            apps = serve.status().applications
            states = {name: d.status.value for app in apps.values()
                      for name, d in app.deployments.items()}
        except Exception:  # status is best effort while the controller starts
            states = {}
        logger.info("starting engines (%.0f s): %s", time.monotonic() - started, states or "...")


def _kill_leftovers(procs: list[psutil.Process]) -> None:
    alive = [p for p in procs if p.is_running()]
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, still = psutil.wait_procs(alive, timeout=5)
    for proc in still:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    if alive:
        logger.info("stopped %d leftover processes", len(alive))


def _drain(router: Any, timeout_s: float) -> None:
    """Refuse new requests (503 + Retry-After), then wait for started ones to finish."""
    pending = router.begin_drain.remote().result()
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        logger.info("draining: %d requests in flight", pending)
        time.sleep(DRAIN_POLL_S)
        pending = router.in_flight.remote().result()
    if pending:
        logger.warning("drain timeout: %d requests still in flight are cut off", pending)


def serve_foreground(config: AppConfig) -> int:
    os.environ.update(QUIET_ENV)
    # Every Ray process inherits this before it imports prometheus_client, so the
    # router's /metrics sums over all replicas. A fresh folder per run: stale files
    # from an earlier run would be counted too.
    metrics_dir = tempfile.mkdtemp(prefix="onlycs-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    os.environ.update(ray_logging_env(config.logging))
    import ray
    from ray import serve
    from ray.serve.config import HTTPOptions

    from serving.app import APP_NAME, build_app

    stop = threading.Event()
    starting = True

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s: draining", signal.Signals(signum).name)
        stop.set()
        if starting:
            raise _StopRequested

    me = psutil.Process()
    server = config.server
    try:
        ray.init(address="local", include_dashboard=False, num_cpus=os.cpu_count(),
                 configure_logging=False)
        # After ray.init: it installs its own SIGTERM handler, which exits at once.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        serve.start(http_options=HTTPOptions(host=server.host, port=server.port),
                    logging_config=serve_logging(config.logging))
        started, done = time.monotonic(), threading.Event()
        threading.Thread(target=_report_progress, args=(started, done), daemon=True).start()
        try:
            serve.run(build_app(config), name=APP_NAME, route_prefix="/",
                      logging_config=serve_logging(config.logging))
        finally:
            done.set()
        starting = False
        logger.info("OnlyCS ready in %.0f s: http://%s:%d/v1 (profile %s)",
                    time.monotonic() - started, server.host, server.port, config.profile)
        while not stop.wait(1.0):
            pass
        _drain(serve.get_app_handle(APP_NAME), server.drain_timeout_s)
    except _StopRequested:
        logger.info("stopped during start-up")
    finally:
        descendants = me.children(recursive=True)
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            _kill_leftovers(descendants)
            shutil.rmtree(metrics_dir, ignore_errors=True)
    logger.info("stopped")
    return 0
