"""Ingress: where the HTTP listener lives. `proxy` (Ray Serve's HTTP proxy actor takes the
request and hands it to the router replica) against `direct` (the router replica listens
itself, `RAY_SERVE_ENABLE_DIRECT_INGRESS`), the same appliance otherwise.

Each round starts one stack per variant, order alternating, and measures: `/healthz` one
call at a time (the hop alone), `kb` answers' time to first token at 1 and 8 streaming
clients (no engine), and the pinned small tier streaming 64 tokens at 1 and 8 streams
(vLLM's own benchmark client). Rows are medians over rounds, with the spread.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx

from perf.knowledge_serving_suite import KB_QUESTIONS, _ttft
from perf.loadgen import measure, synthetic_prompts
from perf.report import percentile, table, write
from perf.stack import appliance

VARIANTS = ("proxy", "direct")
ROUNDS = 2
HEALTH_CALLS = 60
KB_ANSWERS = 48
STREAMS = {1: 6, 8: 24}  # concurrency: requests
OUTPUT_TOKENS = 64
PROMPT_WORDS = 60
COLUMNS = ["measure", "proxy", "direct", "direct_vs_proxy", "spread_proxy", "spread_direct"]


def _health_ms(url: str) -> float:
    samples = []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get("/healthz")
        for _ in range(HEALTH_CALLS):
            started = time.perf_counter()
            client.get("/healthz").raise_for_status()
            samples.append(time.perf_counter() - started)
    return percentile(samples, 50) * 1000


def _kb_ttft_ms(url: str, clients: int) -> float:
    samples, modes = asyncio.run(_ttft(url, KB_QUESTIONS, KB_ANSWERS, "kb", clients))
    assert modes == {"kb"}, modes
    return percentile(samples, 50) * 1000


def _one_round(variant: str, seed: int) -> dict[str, float]:
    started = time.monotonic()
    with appliance({"server": {"ingress": variant}}) as (url, _, _):
        ready_s = time.monotonic() - started
        measure(url, "small", synthetic_prompts(4, PROMPT_WORDS, 999), OUTPUT_TOKENS, 4)
        _kb_ttft_ms(url, 8)  # warm: the query embeddings are cached from here on
        out = {"ready_s": ready_s, "healthz p50 ms": _health_ms(url)}
        for clients in (1, 8):
            out[f"kb TTFT p50 ms, {clients} clients"] = _kb_ttft_ms(url, clients)
        for level, count in STREAMS.items():
            result = measure(url, "small", synthetic_prompts(count, PROMPT_WORDS, seed + level),
                             OUTPUT_TOKENS, level)
            assert result["errors"] == 0, result
            out[f"small TTFT p50 ms, {level} streams"] = result["ttft_p50_ms"]
            out[f"small tok/s, {level} streams"] = result["out_tok_s"]
    print(f"  {variant:6s} " + ", ".join(f"{k} {v:.1f}" for k, v in out.items()), flush=True)
    return out


def run() -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for round_ in range(ROUNDS):
        order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            runs[variant].append(_one_round(variant, seed=round_ * 100))
    rows = []
    for name in runs["proxy"][0]:
        proxy = [r[name] for r in runs["proxy"]]
        direct = [r[name] for r in runs["direct"]]
        p, d = statistics.median(proxy), statistics.median(direct)
        rows.append({"measure": name, "proxy": round(p, 1), "direct": round(d, 1),
                     "direct_vs_proxy": round(d / p, 3) if p else None,
                     "spread_proxy": f"{min(proxy):.1f}-{max(proxy):.1f}",
                     "spread_direct": f"{min(direct):.1f}-{max(direct):.1f}"})
    path = write("ingress", {"rows": rows, "runs": runs, "rounds": ROUNDS,
                             "note": "processes at nice 0 in both variants"})
    print(table(rows, COLUMNS))
    print(f"\nwritten: {path}")
    return {"rows": rows, "path": str(path)}
