"""`onlycs serve`: start Ray and the app in the foreground, drain on SIGTERM.

Stopping takes the whole process tree down: vLLM's EngineCore and worker
processes outlive a plain SIGTERM to their parent, so whatever is left of this
process's descendants after Ray has shut down is killed.

`onlycs serve` is two processes: a supervisor in the terminal's process group, and the
appliance in a session of its own. Ctrl-C signals the whole group: Ray's raylet and
gcs_server, had they been in it, died at once and left the replicas and the vLLM engines
running with no one to drain or stop them. Now only the supervisor gets the group's
signal, and hands it to the appliance as one SIGTERM: a drain, then a stop of every process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from types import FrameType
from typing import Any

import psutil

from kernel.config import AppConfig
from kernel.crypto import CryptoError, create_master_key, write_secret
from kernel.keys import KeyFileError, KeyStore
from kernel.logs import ray_logging_env, serve_logging
from kernel.processes import wait_until
from kernel.store import StoreError, open_store
from models.registry import check_model, model_dir
from serving.channels.outbox import RUN_ENV, new_run_id
from serving.metrics import MULTIPROC_ENV
from serving.proxy_hooks import MAX_BODY_ENV, TLS_MIN_ENV

logger = logging.getLogger("onlycs.serve")

QUIET_ENV = {
    # An on-prem appliance phones nowhere.
    "RAY_USAGE_STATS_ENABLED": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # Ray starts its workers (the ingress, the tier replicas and the vLLM processes they
    # spawn) at nice 15: on an appliance they are the workload, not background jobs, and
    # lose the CPU to any other process at nice 0 (a load generator, Prometheus).
    "RAY_worker_niceness": "0",
    # Ray keeps as many idle workers as there are CPUs, prestarted for the first driver:
    # every actor here (replicas, controller) gets a worker of its own anyway, so the two
    # idle ones were 155 MiB of RSS doing nothing (measured idle, 2026-12-03).
    "RAY_num_workers_soft_limit": "0",
    "RAY_prestart_worker_first_driver": "0",
    # Serve's controller reconciles every 0.1 s by default, which with the GCS calls it
    # makes cost 3 % of a core on an idle 2-core box; at 0.5 s the whole appliance idles at
    # 5.8 % of a core instead of 7.5 % (measured 2026-12-04), and nothing here needs a
    # faster reaction than the replicas' 10 s health checks.
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
    # Ray's own metrics (Serve's request series, node stats for its dashboard) feed nothing
    # here: the appliance exports its `onlycs_` series itself. Every process still woke to
    # keep them: Serve's replicas and handles 10 times a second, the dashboard agent's node
    # stats every 5 s, its ingest of every worker's series; and Ray's log monitor globbed
    # the session's log folder 10 times a second. On two cores each wake-up preempts one
    # of the engine's OpenMP threads while the other waits at the next barrier: an idle
    # appliance beside bare vLLM cost it 9-11 % of its tokens per second (2026-12-05).
    "RAY_enable_metrics_collection": "0",
    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "10000",
    "REPORTER_UPDATE_INTERVAL_MS": "60000",
    "RAY_LOG_MONITOR_MANY_FILES_THRESHOLD": "0",
    # While ray.init runs, a SIGTERM reaches Ray's own handler, which first asks the GCS to
    # drain the node (up to 30 s, over RPC from inside a signal handler, with the GCS
    # perhaps not up yet): the likeliest place of the one start-up stop that hung (180 s,
    # empty log, in CI on 2026-12-04). The launcher drains Serve itself, so the node is torn
    # down at once.
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    # Ray Serve runs a replica's code on an event loop in a thread of its own by default, so
    # every ASGI message crosses threads (a wake-up of the replica's loop each). Nothing the
    # router does blocks for long (a new question's embedding and huge prompts go to worker
    # threads), and on its own loop a kb answer took 12 % less of the router's CPU and came
    # 17 % sooner at 8 clients (12.9-13.1 against 15.4-15.8 ms p50, 2026-12-04); an
    # engine's streamed answers, 9 % less CPU per token, as fast.
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
}
PROGRESS_EVERY_S = 15.0
DRAIN_POLL_S = 0.5


class _StopRequested(BaseException):  # never swallowed by an `except Exception` in Ray
    pass


def preflight(config: AppConfig) -> list[str]:
    """Problems that would make start-up fail later and less clearly."""
    problems = []
    for name in config.tier_names:
        try:
            folder = model_dir(config, config.tiers[name])
        except RuntimeError as exc:
            problems.append(f"tiers.{name}.model: {exc}")
            continue
        problems += [f"tiers.{name}.model: {p}" for p in check_model(folder)]
    if config.tls.enabled:
        for key in ("cert_file", "key_file"):
            path = getattr(config.tls, key)
            if not os.access(path, os.R_OK):
                problems.append(f"tls.{key}: {path} is missing or unreadable")
    if config.store.enabled:
        problems += _store_problems(config)
    if config.auth_required:
        try:
            active = [k for k in KeyStore(config.security.keys_file).list() if k.active]
        except KeyFileError as exc:
            active, problems = [], [*problems, f"security.keys_file: {exc}"]
        if not active:
            problems.append(f"security.keys_file: auth is on but {config.security.keys_file} "
                            "holds no active key; create one with `onlycs keys create`")
    if not problems:
        problems += _admin_key_problems(config)
    return problems


def _admin_key_problems(config: AppConfig) -> list[str]:
    """Admin endpoints need an admin key in every mode: make the first one if none exists."""
    security = config.security
    try:
        keys = KeyStore(security.keys_file)
        if any(k.active and k.scope == "admin" for k in keys.list()):
            return []
        if security.admin_key_file.exists():
            return [f"security.admin_key_file: {security.admin_key_file} exists but "
                    f"{security.keys_file} holds no active admin key; remove the stale file "
                    "or create a key with `onlycs keys create --scope admin`"]
        security.admin_key_file.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(security.admin_key_file.parent, os.W_OK):
            return [f"security.admin_key_file: cannot write {security.admin_key_file}; create "
                    "an admin key with `onlycs keys create --scope admin`"]
        secret, _ = keys.create("first-admin", "admin")
        write_secret(security.admin_key_file, secret)
    except (KeyFileError, ValueError, OSError) as exc:
        return [f"security.keys_file: {exc}"]
    logger.warning("first admin key written to %s (mode 0600): admin endpoints and "
                   "`onlycs lora load|unload|default|list` need it", security.admin_key_file)
    return []


def _store_problems(config: AppConfig) -> list[str]:
    """Open the store once: a wrong or exposed master key stops the start here."""
    store = config.store
    if not store.master_key_file.exists():
        create_master_key(store.master_key_file)
        logger.warning("created master key %s (0600): back it up, the conversation store "
                       "cannot be read without it", store.master_key_file)
    try:
        open_store(store).close()
    except CryptoError as exc:
        return [f"store.master_key_file: {exc}"]
    except StoreError as exc:
        where = "store.postgresql_dsn" if store.backend == "postgresql" else "store.path"
        return [f"{where}: the conversation store cannot be opened: {exc}"]
    return []


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


def _kill_leftovers(me: psutil.Process, known: list[psutil.Process]) -> None:
    """End every descendant, in rounds: a daemon killed mid-start (raylet) can have just
    spawned children (its agents), which, orphaned, come to us as the subreaper."""
    stopped: set[int] = set()
    for _ in range(_KILL_ROUNDS):
        alive = [p for p in {*known, *me.children(recursive=True)} if p.is_running()
                 and p.pid not in stopped]
        if not alive:
            break
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, still = psutil.wait_procs(alive, timeout=5)
        for proc in still:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(still, timeout=5)
        stopped.update(p.pid for p in alive)
        known = []
    if stopped:
        logger.info("stopped %d leftover processes", len(stopped))


_KILL_ROUNDS = 4
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    """Linux's prctl(2); elsewhere nothing (no such call)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value)


def _adopt_orphans() -> None:
    """Descendants whose parent dies are re-parented to this process instead of init, so
    a stop still finds (and ends) them, and no orphan outlives the appliance."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _reap_orphans(me: psutil.Process, own: set[int]) -> None:
    """Collect adopted orphans that have exited; Ray's own children it waits for itself."""
    for child in me.children():
        if child.pid in own:
            continue
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)


def proxy_env(config: AppConfig) -> dict[str, str]:
    """Settings for `serving.proxy_hooks`, which Ray Serve runs where it listens: in its
    proxy process, or in the router replica with direct ingress."""
    env = {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "serving.proxy_hooks.configure_proxy",
           MAX_BODY_ENV: str(config.security.max_body_bytes)}
    if config.tls.enabled:
        env[TLS_MIN_ENV] = "1.3"
    if config.server.ingress == "direct":
        # The router replica serves the port itself (Ray runs the same hooks there); the
        # port range is that one port, so the configured port is where it listens.
        port = config.server.port
        env |= {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
                "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
                "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1),
                # Ray holds a freed port back for HAProxy's sake (none here): a router
                # replica that replaces a dead one must get the one port at once.
                "RAY_SERVE_PORT_QUARANTINE_S": "0"}
    return env


def cluster_env(config: AppConfig, metrics_dir: str) -> dict[str, str]:
    """What every Ray process of the appliance must see, on every node. A local Ray
    inherits it from this process; the raylets of a cluster were started by their own
    units, so it goes to the job, the Serve controller and (through them) the proxies
    and replicas as their runtime environment."""
    return {**QUIET_ENV, MULTIPROC_ENV: metrics_dir, **ray_logging_env(config.logging),
            **proxy_env(config), RUN_ENV: new_run_id()}


def proxy_location(config: AppConfig) -> str:
    """With direct ingress the router replica listens itself and Ray's proxy idles: only on
    the head, so nothing of Serve's listens on a worker node."""
    return "HeadOnly" if config.server.ingress == "direct" else "EveryNode"


def proxy_port(config: AppConfig) -> int:
    """Ray starts its proxy on the head even with direct ingress: it gets a free port of
    the kernel's choosing (never one another service may hold), the router replica the
    configured one."""
    return 0 if config.server.ingress == "direct" else config.server.port


def http_options(config: AppConfig) -> Any:
    from ray.serve.config import HTTPOptions

    options: dict[str, Any] = {"host": config.server.host, "port": proxy_port(config)}
    if config.tls.enabled:
        options |= {"ssl_certfile": str(config.tls.cert_file),
                    "ssl_keyfile": str(config.tls.key_file)}
    return HTTPOptions(**options)


def _drain(router: Any, timeout_s: float, begin_timeout_s: float | None = None) -> None:
    """Refuse new requests (503 + Retry-After), then wait for started ones to finish."""
    if not router.begin_drain.remote().result(timeout_s=begin_timeout_s):
        return

    def drained() -> bool:
        pending = router.in_flight.remote().result()
        if pending:
            logger.info("draining: %d requests in flight", pending)
        return not pending

    try:
        wait_until(drained, timeout_s=timeout_s, interval_s=DRAIN_POLL_S, what="drain")
    except TimeoutError:
        logger.warning("drain timeout: %d requests still in flight are cut off",
                       router.in_flight.remote().result())


SUPERVISED_ENV = "ONLYCS_SUPERVISED"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: a SIGTERM (a drain) when the supervisor dies."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(argv: list[str]) -> int:
    """Run `argv` (this same `onlycs serve`) in a new session and pass it each SIGINT or
    SIGTERM as SIGTERM; its exit code is ours."""
    child = subprocess.Popen(argv, env={**os.environ, SUPERVISED_ENV: "1"},
                             start_new_session=True, preexec_fn=_die_with_parent)

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return child.wait()


def supervised() -> bool:
    return os.environ.get(SUPERVISED_ENV) == "1"


def serve_foreground(config: AppConfig) -> int:
    # Every Ray process gets the metrics folder before it imports prometheus_client, so
    # the router's /metrics sums over all replicas. A fresh folder per run: stale files
    # from an earlier run would be counted too.
    env = cluster_env(config, tempfile.mkdtemp(prefix="onlycs-metrics-"))
    os.environ.update(env)
    import ray
    from ray import serve

    from serving.app import build_app
    from serving.pipeline.dispatch import APP_NAME

    stop = threading.Event()
    starting = True

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s: draining", signal.Signals(signum).name)
        stop.set()
        if starting:
            raise _StopRequested

    me = psutil.Process()
    _adopt_orphans()
    server = config.server
    ray_up = serve_up = False
    # Ours from the first moment: a stop while Ray is still starting is a stop, not a
    # Python default that kills this process with Ray's daemons left behind.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if config.ray.address == "local":
            ray.init(address="local", include_dashboard=False, num_cpus=os.cpu_count(),
                     configure_logging=False)
        else:  # a cluster's resources are its nodes' own
            ray.init(address=config.ray.address, configure_logging=False,
                     runtime_env={"env_vars": env})
        ray_up = True
        # Again after ray.init: it installs its own SIGTERM handler, which exits at once.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        serve_up = True  # from here serve.shutdown() has something to stop, or says so
        serve.start(http_options=http_options(config),
                    logging_config=serve_logging(config.logging),
                    controller_options={"runtime_env": {"env_vars": env}},
                    proxy_location=proxy_location(config))
        started, done = time.monotonic(), threading.Event()
        threading.Thread(target=_report_progress, args=(started, done), daemon=True).start()
        try:
            serve.run(build_app(config), name=APP_NAME, route_prefix="/",
                      logging_config=serve_logging(config.logging))
        finally:
            done.set()
        starting = False
        scheme = "https" if config.tls.enabled else "http"
        logger.info("OnlyCS ready in %.0f s: %s://%s:%d/v1 (profile %s, auth %s)",
                    time.monotonic() - started, scheme, server.host, server.port,
                    config.profile, "on" if config.auth_required else "off")
        own = {p.pid for p in me.children()}
        while not stop.wait(1.0):
            _reap_orphans(me, own)
        _drain(serve.get_app_handle(APP_NAME), server.drain_timeout_s)
    except (_StopRequested, SystemExit) as stopped:
        # SystemExit: Ray's own handler, which ray.init puts in place of ours while it runs.
        if isinstance(stopped, SystemExit) and not starting:
            raise
        logger.info("stopped during start-up")
        starting = False  # a second signal must not interrupt the drain below
        # serve.run() polls the app's status, so the router can already be answering (and
        # have requests running) when a signal lands before it returns: drain those too.
        # With no router up yet there is nothing to drain, and the lookup fails: fine.
        if serve_up:
            with contextlib.suppress(Exception):
                _drain(serve.get_app_handle(APP_NAME), server.drain_timeout_s,
                       begin_timeout_s=5)
    finally:
        descendants = me.children(recursive=True)
        try:
            if serve_up:
                serve.shutdown()
        finally:
            if ray_up:
                ray.shutdown()
            # Ray stopped mid-start has no session to shut down: its daemons are ours to end.
            _kill_leftovers(me, descendants)
            shutil.rmtree(env[MULTIPROC_ENV], ignore_errors=True)
    logger.info("stopped")
    return 0
