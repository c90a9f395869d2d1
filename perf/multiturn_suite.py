"""Multiturn: five-turn conversations, time to first token by turn, with vLLM's prefix
cache and session affinity on versus off, on one appliance whose small tier runs two
replicas (affinity only matters with more than one).

Variants, assigned round-robin to conversations that run at the same time:
- cache + affinity: the session id (`user`) keeps every turn on one replica, whose
  prefix cache already holds the conversation so far (the appliance's default);
- cache, no affinity: no session id, so Ray Serve picks either replica each turn;
- no cache, no affinity: as above, and a fresh `cache_salt` per turn so no earlier
  prefix can be reused (what a stack without prefix caching pays).
Every variant sends the same full history from the client, so prompts are alike.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import time

import aiohttp
from vllm.benchmarks.lib.endpoint_request_func import (
    RequestFuncInput,
    async_request_openai_chat_completions,
)

from perf.report import percentile, table, write
from perf.stack import REPO, appliance

TURNS = 5
CONVERSATIONS_PER_VARIANT = 12
CONCURRENT = 6
REPLY_TOKENS = 24
THINK_S = 0.2
VARIANTS = ("cache + affinity", "cache, no affinity", "no cache, no affinity")
QUESTIONS = ["Hi, I need help with an order I placed last week.",
             "What is your return window, and do I pay for return shipping?",
             "Can I exchange the lamp for a different colour instead?",
             "How long does a refund take once you receive the parcel?",
             "Thanks. What are your support hours if I need you again?"]
TARGET_REDUCTION = 0.40


def _system_prompt() -> str:
    facts = [json.loads(line) for line in
             (REPO / "lora" / "data" / "kb.jsonl").read_text().splitlines()[:30]]
    kb = "\n".join(f"- {f['question']} {f['answer']}" for f in facts)
    return ("You are Aria, a precise customer-service agent of Lumen Home, a lighting "
            f"shop. Use these facts:\n{kb}\nAnswer in one or two sentences.")


async def _conversation(session: aiohttp.ClientSession, url: str, variant: str,
                        system: str) -> list[float]:
    conversation_id = f"mt-{secrets.token_hex(6)}"
    messages = [{"role": "system", "content": system}]
    ttft = []
    for question in QUESTIONS[:TURNS]:
        messages.append({"role": "user", "content": question})
        extra: dict = {"temperature": 0}
        if variant == "cache + affinity":
            extra["user"] = conversation_id
        elif variant == "no cache, no affinity":
            extra["cache_salt"] = secrets.token_hex(8)
        out = await async_request_openai_chat_completions(RequestFuncInput(
            prompt="", chat_messages=list(messages), api_url=f"{url}/v1/chat/completions",
            prompt_len=0, output_len=REPLY_TOKENS, model="small", ignore_eos=True,
            extra_body=extra), session)
        if not out.success:
            raise RuntimeError(f"{variant}: {out.error[-300:]}")
        ttft.append(out.ttft)
        messages.append({"role": "assistant", "content": out.generated_text})
        await asyncio.sleep(THINK_S)
    return ttft


async def _all(url: str) -> dict[str, list[list[float]]]:
    system = _system_prompt()
    plan = [VARIANTS[i % len(VARIANTS)]
            for i in range(CONVERSATIONS_PER_VARIANT * len(VARIANTS))]
    results: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    semaphore = asyncio.Semaphore(CONCURRENT)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        async def one(variant: str) -> None:
            async with semaphore:
                results[variant].append(await _conversation(session, url, variant, system))

        await asyncio.gather(*(one(v) for v in plan))
    return results


def _cached_tokens(url: str) -> float:
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("onlycs_prompt_cached_tokens_total{"))


def run() -> dict:
    overrides = {"tiers": {"small": {"num_replicas": 2, "cpu_kvcache_space_gib": 1}}}
    with appliance(overrides) as (url, _, _):
        cached_before = _cached_tokens(url)
        started = time.perf_counter()
        results = asyncio.run(_all(url))
        elapsed = time.perf_counter() - started
        cached = _cached_tokens(url) - cached_before
    rows = []
    for turn in range(TURNS):
        row: dict = {"turn": turn + 1}
        for variant in VARIANTS:
            values = [conv[turn] for conv in results[variant]]
            row[f"{variant} p50_ms"] = round(statistics.median(values) * 1000, 1)
            row[f"{variant} p99_ms"] = round(percentile(values, 99) * 1000, 1)
        base = row["no cache, no affinity p50_ms"]
        row["reduction_on_vs_off"] = round(1 - row["cache + affinity p50_ms"] / base, 3)
        rows.append(row)
    late = [r["reduction_on_vs_off"] for r in rows if r["turn"] >= 3]
    met = min(late) >= TARGET_REDUCTION
    path = write("multiturn", {"rows": rows, "raw_ttft_s": results, "turns": TURNS,
                               "conversations_per_variant": CONVERSATIONS_PER_VARIANT,
                               "concurrent": CONCURRENT, "reply_tokens": REPLY_TOKENS,
                               "prompt_cached_tokens": cached, "elapsed_s": elapsed,
                               "target": {"turn>=3 reduction": TARGET_REDUCTION, "met": met}})
    columns = ["turn", *[f"{v} p50_ms" for v in VARIANTS], "reduction_on_vs_off"]
    print(table(rows, columns))
    print(f"\nprompt tokens served from the prefix cache during the run: {cached:.0f}")
    print(f"[{'met' if met else 'MISSED'}] turn >= 3 TTFT at least 40% lower with cache + "
          f"affinity than with neither: {', '.join(f'{x:.0%}' for x in late)}")
    print(f"\nwritten: {path}")
    return {"rows": rows, "path": str(path)}
