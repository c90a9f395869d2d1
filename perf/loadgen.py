"""Closed-loop load at a fixed concurrency, measured with vLLM's own benchmark request
function (`vllm bench serve`'s streaming chat client, from the pinned vllm package), so
TTFT, inter-token latency and TPOT are computed exactly as vLLM's harness computes them."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import aiohttp
from vllm.benchmarks.lib.endpoint_request_func import (
    RequestFuncInput,
    RequestFuncOutput,
    async_request_openai_chat_completions,
)

from perf.report import percentile

_VOCABULARY = ("lamp order refund shipping window price warranty bulb socket brightness "
               "delivery invoice account password colour kitchen ceiling dimmer battery "
               "outdoor garden store hours return exchange receipt parcel courier address "
               "voucher discount")
WORDS = _VOCABULARY.split()


def synthetic_prompts(count: int, words: int, seed: int) -> list[str]:
    """Distinct prompts (no shared prefix, so no run gets prefix-cache help)."""
    rng = random.Random(seed)
    return [f"Ticket {rng.randrange(10**9)}: " + " ".join(rng.choice(WORDS) for _ in range(words))
            for _ in range(count)]


async def _run(url: str, model: str, prompts: list[str], output_len: int,
               concurrency: int, headers: dict[str, str] | None) -> tuple[list, float]:
    semaphore = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=3600)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        async def one(prompt: str) -> RequestFuncOutput:
            async with semaphore:
                return await async_request_openai_chat_completions(RequestFuncInput(
                    prompt=prompt, api_url=f"{url}/v1/chat/completions", prompt_len=0,
                    output_len=output_len, model=model, ignore_eos=True,
                    extra_headers=headers), session)

        started = time.perf_counter()
        outputs = await asyncio.gather(*(one(p) for p in prompts))
        return outputs, time.perf_counter() - started


def measure(url: str, model: str, prompts: list[str], output_len: int, concurrency: int,
            headers: dict[str, str] | None = None) -> dict[str, Any]:
    outputs, wall = asyncio.run(_run(url, model, prompts, output_len, concurrency, headers))
    ok = [o for o in outputs if o.success]
    tokens = sum(o.output_tokens or 0 for o in ok)
    ttft = [o.ttft for o in ok]
    itl = [x for o in ok for x in o.itl]
    tpot = [(o.latency - o.ttft) / (o.output_tokens - 1) for o in ok if o.output_tokens > 1]
    latency = [o.latency for o in ok]

    def ms(values: list[float], q: float) -> float | None:
        return round(percentile(values, q) * 1000, 1) if values else None

    return {
        "concurrency": concurrency, "requests": len(outputs), "errors": len(outputs) - len(ok),
        "wall_s": round(wall, 2), "req_s": round(len(ok) / wall, 3),
        "out_tok_s": round(tokens / wall, 1),
        "ttft_p50_ms": ms(ttft, 50), "ttft_p99_ms": ms(ttft, 99),
        "tpot_p50_ms": ms(tpot, 50), "tpot_p99_ms": ms(tpot, 99),
        "itl_p50_ms": ms(itl, 50), "itl_p99_ms": ms(itl, 99),
        "e2e_p50_ms": ms(latency, 50), "e2e_p99_ms": ms(latency, 99),
        "mean_output_tokens": round(statistics.fmean([o.output_tokens for o in ok]), 1)
        if ok else 0,
        "first_error": next((o.error[-300:] for o in outputs if not o.success), None),
        "samples": {"ttft": ttft, "latency": latency, "tpot": tpot},
    }


def measure_levels(url: str, levels: dict[int, int], prompt_words: int, output_tokens: int,
                   label: str) -> dict[int, dict[str, Any]]:
    """A warm-up, then `count` requests at each `concurrency` of `levels` against the small
    model of a bare vLLM server, printing tok/s as they finish."""
    measure(url, "small", synthetic_prompts(4, prompt_words, 999), output_tokens, 4)
    results = {}
    for level, count in levels.items():
        results[level] = measure(url, "small", synthetic_prompts(count, prompt_words, level),
                                 output_tokens, level)
        print(f"  {label:9s} c={level} {results[level]['out_tok_s']:6.1f} tok/s", flush=True)
    return results


def ratio_rows(results: dict[str, dict[int, dict[str, Any]]], column: str,
               baseline: str) -> list[dict[str, Any]]:
    """Per concurrency level, a row per variant: tok/s, its ratio to `baseline`'s, TTFT, ITL."""
    rows = []
    for level in results[baseline]:
        base = results[baseline][level]["out_tok_s"]
        for variant, by_level in results.items():
            r = by_level[level]
            rows.append({column: variant, "concurrency": level, "out_tok_s": r["out_tok_s"],
                         f"ratio_vs_{baseline}": round(r["out_tok_s"] / base, 2),
                         "ttft_p50_ms": r["ttft_p50_ms"], "itl_p50_ms": r["itl_p50_ms"],
                         "errors": r["errors"]})
    return rows
