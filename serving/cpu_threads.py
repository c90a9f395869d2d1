"""How many cores a CPU-profile engine computes on, and making sure it gets them.

Ray sets OMP_NUM_THREADS=1 in every worker process that asks for no CPU (the router
replica) or one CPU, and vLLM sets it itself only for the worker processes of its `mp`
executor: the single-process engine (`cpu_single_process`) inherited Ray's 1 and computed
on one core of two (measured: its process 1.0 core busy where bare vLLM's ran 1.9).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"


def omp_threads_bind(setting: str) -> str:
    """`all`: every core this process may run on. vLLM's own `auto` keeps one core back
    for its spinning scheduler, which `cpu_engine_wait_s` puts to sleep instead."""
    if setting != "all":
        return setting
    return ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))


def omp_threads(bind: str) -> int:
    """OpenMP threads for an engine bound by `bind` (VLLM_CPU_OMP_THREADS_BIND's syntax):
    one per core of its first list; for `auto`, every core this process may use but one
    (vLLM's meaning: one core stays free for other work); for `nobind`, every core, as an
    engine started outside Ray gets."""
    cores_here = len(os.sched_getaffinity(0))
    if bind == "auto":
        return max(cores_here - 1, 1)
    if bind == "nobind":
        return cores_here
    cores = 0
    for part in bind.split("|")[0].split(","):
        first, _, last = part.strip().partition("-")
        cores += int(last) - int(first) + 1 if last else 1
    return max(cores, 1)


@contextlib.contextmanager
def engine_threads() -> Iterator[None]:
    """While an engine starts its processes: OMP_NUM_THREADS as its binding says (they
    read it at start); this process's own setting is back afterwards."""
    bind = os.environ.get(BIND_ENV)
    if bind is None:  # not the CPU profile
        yield
        return
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(omp_threads(bind))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before
