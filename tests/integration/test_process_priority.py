"""Every process of the appliance runs at normal priority: Ray starts its workers at nice
15 unless told otherwise, which made the engines lose the CPU to any other load."""

from __future__ import annotations

import os

import psutil
import pytest

from serving.cpu_threads import BIND_ENV, omp_threads
from tests.integration.conftest import Appliance

pytestmark = pytest.mark.integration


def test_replicas_and_engines_run_at_nice_0(appliance: Appliance) -> None:
    tree = psutil.Process(appliance.process.pid).children(recursive=True)
    names = {p.pid: " ".join(p.cmdline())[:80] for p in tree}
    serving = [p for p in tree if "ServeReplica" in names[p.pid] or "VLLM" in p.name()]
    assert len(serving) >= 4, names  # the ingress, three tier replicas, their engines
    assert {names[p.pid]: p.nice() for p in tree if p.nice() != 0} == {}


def test_health_answers_where_load_balancers_and_guidellm_probe(
        appliance: Appliance) -> None:
    for path in ("/health", "/healthz"):
        assert appliance.http(None).get(path).json() == {"status": "ok"}


def test_every_engine_computes_on_each_core_it_is_bound_to(appliance: Appliance) -> None:
    # Ray leaves OMP_NUM_THREADS=1 in its workers; an engine that inherited it computed on
    # one core of two. The environment an engine process started with is what OpenMP read.
    tree = psutil.Process(appliance.process.pid).children(recursive=True)
    engines = [p for p in tree if p.name().startswith("VLLM::EngineCore")]
    assert len(engines) >= 2, [p.name() for p in tree]  # in the router and in a replica
    for engine in engines:
        env = engine.environ()
        assert env["OMP_NUM_THREADS"] == str(omp_threads(env[BIND_ENV])), env.get(BIND_ENV)
    if len(os.sched_getaffinity(0)) > 1:
        assert {engine.environ()["OMP_NUM_THREADS"] for engine in engines} != {"1"}


def _thread_names(process: psutil.Process) -> list[str]:
    names = []
    for thread in process.threads():
        try:
            with open(f"/proc/{process.pid}/task/{thread.id}/comm") as comm:
                names.append(comm.read().strip())
        except FileNotFoundError:  # the thread ended between the listing and the read
            pass
    return names


def test_every_engine_has_one_gloo_thread_waking_it(appliance: Appliance) -> None:
    # torch gives each of a lone engine's 13 gloo groups a device whose thread wakes every
    # 10 ms; on two cores each wake-up preempts one of the engine's OpenMP threads.
    tree = psutil.Process(appliance.process.pid).children(recursive=True)
    engines = [p for p in tree if p.name().startswith("VLLM::EngineCore")]
    assert len(engines) >= 2, [p.name() for p in tree]
    for engine in engines:
        assert _thread_names(engine).count("gloo_tcp_loop") == 1, engine.pid


def test_ray_keeps_no_metrics_of_its_own(appliance: Appliance) -> None:
    tree = psutil.Process(appliance.process.pid).children(recursive=True)
    replicas = [p for p in tree if " ".join(p.cmdline()).startswith("ray::ServeReplica")]
    assert replicas
    for replica in replicas:
        env = replica.environ()
        assert env["RAY_enable_metrics_collection"] == "0"
        assert int(env["RAY_SERVE_METRICS_EXPORT_INTERVAL_MS"]) >= 10_000
