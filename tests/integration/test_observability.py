"""Metrics against the real stack, and the shipped dashboards and alert rules run through
a real Prometheus server (Debian's `prometheus`, on loopback) scraping the appliance."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from kernel.processes import managed_process, wait_until
from tests.integration.conftest import REPO, Appliance, free_port

pytestmark = pytest.mark.integration

MONITORING = REPO / "provisioning" / "ansible" / "roles" / "monitoring" / "files"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
RULES = MONITORING / "prometheus" / "rules" / "onlycs-alerts.yml"
# Per-device GPU series exist only where NVML sees a GPU; none exists on these machines.
# tests/unit/test_gpu_metrics.py checks these names against a fake NVML instead.
GPU_DEVICE_METRICS = ("onlycs_gpu_utilization_ratio", "onlycs_gpu_memory_used_bytes",
                      "onlycs_gpu_memory_total_bytes", "onlycs_gpu_temperature_celsius",
                      "onlycs_gpu_power_watts")
THRESHOLD = re.compile(r"^(?P<lhs>.+?)\s*(?:>|<|>=|<=|==|!=)\s*[-+0-9.e]+$", re.S)


def _samples(app: Appliance) -> dict[tuple[str, tuple], float]:
    text = app.http().get("/metrics", timeout=30).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lbl), v in samples.items()
               if n == name and all(dict(lbl).get(k) == want for k, want in labels.items()))


def _send_traffic(app: Appliance, count: int) -> int:
    """`count` chat requests over both tiers, half streamed; returns tokens the engines
    generated (an answer the appliance wrote itself, model `onlycs-...`, has usage too)."""
    client = app.async_openai()

    def by_engine(model: str, tokens: int) -> int:
        return 0 if model.startswith("onlycs-") else tokens

    async def one(i: int) -> int:
        kwargs = dict(model=("small", "large", "auto")[i % 3], max_tokens=8,
                      messages=[{"role": "user", "content": f"Question number {i}?"}])
        if i % 2:
            stream = await client.chat.completions.create(
                stream=True, stream_options={"include_usage": True}, **kwargs)
            chunks = [c async for c in stream]
            return by_engine(chunks[-1].model, chunks[-1].usage.completion_tokens)
        reply = await client.chat.completions.create(**kwargs)
        return by_engine(reply.model, reply.usage.completion_tokens)

    async def all_of_them() -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(count)))

    return sum(asyncio.run(all_of_them()))


def test_metrics_endpoint_shows_only_onlycs_series(appliance: Appliance) -> None:
    response = appliance.http().get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    names = {name for name, _ in _samples(appliance)}
    assert names and all(n.startswith("onlycs_") for n in names)
    for expected in ("onlycs_requests_total", "onlycs_engine_up", "onlycs_gpu_available",
                     "onlycs_build_info", "onlycs_engine_kv_cache_usage_ratio"):
        assert expected in names


def test_counters_match_the_traffic_sent_exactly(appliance: Appliance) -> None:
    chat = "/v1/chat/completions"
    before = _samples(appliance)
    generated = _send_traffic(appliance, 20)
    bad = appliance.http().post(f"{chat}", content=b"{")
    assert bad.status_code == 400
    after = _samples(appliance)

    def delta(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    assert delta("onlycs_requests_total", endpoint=chat, status="200") == 20
    assert delta("onlycs_requests_total", endpoint=chat, status="400") == 1
    assert delta("onlycs_routing_decisions_total") == 20
    assert delta("onlycs_request_duration_seconds_count", endpoint=chat) == 21
    assert _total(after, "onlycs_requests_in_flight") == 0
    # Engine stats arrive per engine step, a moment after the answer itself.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: _total(_samples(appliance), "onlycs_generation_tokens_total")
                   - _total(before, "onlycs_generation_tokens_total") >= generated,
                   timeout_s=30, interval_s=0.5, what="engine token counts")
    after = _samples(appliance)
    assert delta("onlycs_generation_tokens_total") == generated


def test_logs_are_json_with_request_ids_and_no_prompt_text(appliance: Appliance) -> None:
    secret = "my card number is 6222020200112233445"
    response = appliance.http().post("/v1/chat/completions", timeout=120, json={
        "model": "small", "max_tokens": 4, "messages": [{"role": "user", "content": secret}]})
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    router_logs = list((appliance.log_dir / "serve").glob("replica_onlycs_router_*.log"))
    assert router_logs, f"no router log under {appliance.log_dir}"
    def my_lines() -> list[dict]:
        lines = [json.loads(line) for path in router_logs
                 for line in path.read_text().splitlines() if line.strip()]
        return [line for line in lines if line.get("request_id") == request_id]

    # Ray Serve buffers log records briefly before writing them.
    with contextlib.suppress(TimeoutError):
        wait_until(my_lines, timeout_s=30, what="the request's log lines")
    mine = my_lines()
    assert any("POST /v1/chat/completions 200" in line["message"] for line in mine)
    own = (appliance.log_dir / "onlycs.log").read_text().splitlines()
    assert own and all(json.loads(line)["level"] for line in own)
    every_log = [p for p in appliance.log_dir.rglob("*") if p.is_file()]
    every_log.append(appliance.log_path)
    assert not [p for p in every_log if secret in p.read_text(errors="replace")]


@pytest.fixture(scope="module")
def prometheus(appliance: Appliance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the `prometheus` Debian package is missing: `make test` installs it")
    work = tmp_path_factory.mktemp("prometheus")
    conf = work / "conf"
    shutil.copytree(MONITORING / "prometheus", conf)
    settings = yaml.safe_load((conf / "prometheus.yml").read_text())
    settings["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    # The appliance serves HTTPS only here: scrape it as an operator would.
    job = settings["scrape_configs"][0]
    job |= {"scheme": "https", "tls_config": {"ca_file": str(appliance.ca_file)}}
    (conf / "prometheus.yml").write_text(yaml.safe_dump(settings))
    target = appliance.base_url.removeprefix("https://")
    (conf / "targets" / "onlycs.json").write_text(json.dumps([{"targets": [target]}]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with managed_process(
            [binary, f"--config.file={conf / 'prometheus.yml'}",
             f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={work / 'data'}"],
            log_path=work / "prometheus.log", stop_timeout_s=30) as process:
        wait_until(lambda: httpx.get(f"{url}/-/ready").status_code == 200, timeout_s=60,
                   interval_s=0.5, ignore=(httpx.HTTPError,), alive=process,
                   what=f"prometheus ready (see {work / 'prometheus.log'})")
        yield url


def _query(url: str, expr: str) -> list:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=30).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def _dashboard_exprs() -> list[str]:
    return [target["expr"] for path in sorted(DASHBOARDS.glob("*.json"))
            for panel in json.loads(path.read_text())["panels"] for target in panel["targets"]]


def _alert_exprs() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    return [THRESHOLD.match(" ".join(rule["expr"].split()))["lhs"] for rule in rules]


def test_every_dashboard_and_alert_expression_returns_data(
        appliance: Appliance, prometheus: str) -> None:
    _send_traffic(appliance, 9)
    # Wait until Prometheus has scraped the traffic, then a few more times for rate().
    want = _total(_samples(appliance), "onlycs_requests_total")
    def scraped() -> bool:
        got = _query(prometheus, "sum(onlycs_requests_total)")
        return bool(got) and float(got[0]["value"][1]) >= want

    wait_until(scraped, timeout_s=120, what="prometheus scraping the traffic")
    time.sleep(4)

    exprs = _dashboard_exprs() + _alert_exprs()
    assert len(exprs) > 20
    gpu_only = [e for e in exprs if any(name in e for name in GPU_DEVICE_METRICS)]
    checked = [e for e in exprs if e not in gpu_only]
    empty = [expr for expr in checked if not _query(prometheus, expr)]
    assert empty == [], f"expressions without data: {empty}"
    # Only the per-device GPU panels are left out, and they are a minority.
    assert len(checked) + len(gpu_only) == len(exprs) and len(checked) > len(gpu_only)
