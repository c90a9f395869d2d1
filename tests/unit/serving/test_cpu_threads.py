"""The engine's OpenMP thread count follows its core binding, whatever Ray set."""

from __future__ import annotations

import os

import pytest

from serving.cpu_threads import BIND_ENV, engine_threads, omp_threads


@pytest.mark.parametrize(("bind", "threads"), [
    ("0,1", 2), ("0-3", 4), ("0-3,8", 5), ("2", 1), ("0-1|2-3", 2), (" 0 , 1 ", 2)])
def test_one_thread_per_bound_core(bind: str, threads: int) -> None:
    assert omp_threads(bind) == threads


def test_unbound_engines_get_every_core_of_the_process() -> None:
    assert omp_threads("nobind") == len(os.sched_getaffinity(0))


def test_auto_leaves_one_core_free_and_never_takes_none() -> None:
    assert omp_threads("auto") == max(len(os.sched_getaffinity(0)) - 1, 1)


def test_the_engine_starts_with_its_threads_and_the_process_keeps_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # What Ray leaves in a worker that asked for no CPU.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv(BIND_ENV, "0-2")
    with engine_threads():
        assert os.environ["OMP_NUM_THREADS"] == "3"
    assert os.environ["OMP_NUM_THREADS"] == "1"
    monkeypatch.delenv("OMP_NUM_THREADS")
    with engine_threads():
        assert os.environ["OMP_NUM_THREADS"] == "3"
    assert "OMP_NUM_THREADS" not in os.environ


def test_without_a_cpu_binding_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BIND_ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with engine_threads():
        assert os.environ["OMP_NUM_THREADS"] == "1"
