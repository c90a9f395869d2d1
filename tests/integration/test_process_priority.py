"""Every process of the appliance runs at normal priority: Ray starts its workers at nice
15 unless told otherwise, which made the engines lose the CPU to any other load."""

from __future__ import annotations

import psutil
import pytest

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
