"""The knowledge base through a running appliance (Ray Serve, vLLM CPU engines):

1. `kb eval` on the held-out set, grounding on and off (the tiers alone), per language, and
   with grounding on over the two later sets (`knowledge.heldout`);
2. time to first token of `kb`-mode answers (no engine) at 8 concurrent streaming clients,
   against the same stack's `open` answers (an engine) as the baseline, rounds alternating
   after a warm-up round that is not counted;
   with the CPU time each answer costs the appliance (all its processes) and the load
   generator (this process), and the TTFT floors that CPU sets: with every client waiting
   on its answer, `clients x CPU per answer / cores`, and, as the router replica is one
   Python process (one core at most), `clients x the router's CPU per answer`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time

import aiohttp
import httpx
import psutil

from kernel.config import KnowledgeConfig
from knowledge.entries import KnowledgeBase
from knowledge.evaluate import evaluate
from knowledge.files import read_file
from knowledge.heldout import CHECKS
from knowledge.heldout import load as load_questions
from knowledge.lumen import SHIPPED
from perf.report import summary_ms, table, write
from perf.stack import appliance, process_kind, process_tree

CLIENTS = 8
ROUNDS = 5
PER_ROUND = 48  # engine answers, per round
KB_PER_ROUND = 400  # repeated kb answers, per round: cheap, and this VM's noise needs many
# ONLYCS_PERF_KB_EVAL: "both" (default), "on" (grounding on only), "0" (the TTFT part alone)
EVAL = os.environ.get("ONLYCS_PERF_KB_EVAL", "both")
TTFT = os.environ.get("ONLYCS_PERF_KB_TTFT", "1") != "0"  # 0: the evaluation alone
KB_QUESTIONS = ["How many watts does the Orbit ceiling light pull?", "Halo 落地灯的质保期是几年？",
                "What is the price of the Kite clip lamp?", "寄到柏林要多久？"]
ABSTAIN = (KnowledgeConfig().abstain_en, KnowledgeConfig().abstain_zh)  # the stack's defaults
OFFERS = tuple(t.split("{entries}")[0].strip()
               for t in (KnowledgeConfig().suggest_en, KnowledgeConfig().suggest_zh))
OPEN_QUESTIONS = ["Hello!", "Thanks a lot!", "你好", "Good morning"]


async def _ttft(url: str, texts: list[str], count: int, wanted: str, clients: int = CLIENTS
                ) -> tuple[list[float], set[str]]:
    """Time to the first content chunk, of the answers in the variant's mode. aiohttp, as
    vLLM's own benchmark client: the load generator shares the two cores with the appliance,
    and httpx cost it 1.45 ms of CPU per answer against aiohttp's 0.39 (README)."""
    samples: list[float] = []
    modes: set[str] = set()
    queue = [texts[i % len(texts)] for i in range(count)]

    async def client(http: aiohttp.ClientSession) -> None:
        while queue:
            text = queue.pop()
            started = time.perf_counter()
            async with http.post(f"{url}/v1/chat/completions", json={
                    "model": "auto", "stream": True, "max_tokens": 16,
                    "messages": [{"role": "user", "content": text}]}) as response:
                route = response.headers.get("x-onlycs-route", "")
                mode = route.split("mode=")[1].split(";")[0] if "mode=" in route else "-"
                modes.add(mode)
                first = None
                async for raw in response.content:  # line by line
                    line = raw.decode()
                    if first is None and line.startswith("data: {") and json.loads(
                            line[6:])["choices"][0].get("delta", {}).get("content"):
                        first = time.perf_counter() - started
                if mode == wanted:  # a distinct question answered `grounded` is not counted
                    samples.append(first if first is not None
                                   else time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=300)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return samples, modes


def _cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds the appliance's processes have used so far: all of them, and the router
    replica's (one Python process, so at most one core's worth however many cores)."""
    total = router = 0.0
    for proc in process_tree(pid):
        try:
            times = proc.cpu_times()
            used = times.user + times.system
            if process_kind(proc).endswith(":router"):
                router += used
        except psutil.Error:  # a process that just exited
            continue
        total += used
    return total, router


def run() -> dict:
    kb = KnowledgeBase.of(1, read_file(SHIPPED))
    questions = load_questions()
    with appliance() as (url, _, pid):
        reports = {}
        with httpx.Client(base_url=url, timeout=300) as client:
            runs = {"both": ("on", "off", *CHECKS), "on": ("on", *CHECKS)}.get(EVAL, ())
            sets = {name: load_questions(path) for name, path in CHECKS.items()}
            for name in runs:
                reports[name] = evaluate(
                    client, kb, sets.get(name, questions),
                    grounding=name != "off", abstain_replies=ABSTAIN, offer_openings=OFFERS,
                    progress=lambda m: print(m, flush=True))
        # Distinct held-out questions the knowledge base answers verbatim: every one is new
        # to the query-embedding cache; the four repeated ones hit it after the first round.
        unique = [q["question"] for q in questions if q["entry"] and "-power" in q["entry"]]
        variants = {"kb, 4 repeated questions": KB_QUESTIONS,
                    f"kb, {len(unique)} distinct questions": unique,
                    "open (engine, baseline)": OPEN_QUESTIONS}
        samples: dict[str, list[float]] = {name: [] for name in variants}
        seen: dict[str, set[str]] = {k: set() for k in samples}
        cpu: dict[str, list[float]] = {name: [0.0, 0.0, 0, 0.0] for name in variants}
        round_p50: dict[str, list[float]] = {name: [] for name in variants}
        if TTFT:  # warm-up, not counted: the first answers pay for imports and caches
            asyncio.run(_ttft(url, KB_QUESTIONS, KB_PER_ROUND, "kb"))
            asyncio.run(_ttft(url, OPEN_QUESTIONS, CLIENTS, "open"))
        for round_ in range(ROUNDS if TTFT else 0):
            for name, texts in variants.items():
                count = KB_PER_ROUND if name.startswith("kb") else PER_ROUND
                if "distinct" in name:  # trailing spaces: new to the cache, same question
                    texts = [t + " " * (round_ + 1) for t in texts]
                    count = len(texts)
                wanted = "open" if name.startswith("open") else "kb"
                (served, routed), own = _cpu_s(pid), time.process_time()
                got, modes = asyncio.run(_ttft(url, texts, count, wanted))
                served_after, routed_after = _cpu_s(pid)
                cpu[name][0] += served_after - served
                cpu[name][1] += time.process_time() - own
                cpu[name][2] += count
                cpu[name][3] += routed_after - routed
                samples[name] += got
                if got:
                    round_p50[name].append(1000 * statistics.median(got))
                seen[name] |= modes
    rows = []
    base = summary_ms(samples["open (engine, baseline)"]) if TTFT else {}
    cores = psutil.cpu_count() or 1
    for name, values in samples.items() if TTFT else ():
        stats = summary_ms(values)
        served_ms, client_ms, router_ms = (1000 * cpu[name][i] / cpu[name][2]
                                           for i in (0, 1, 3))
        rows.append({"answers": name, "clients": CLIENTS, "modes": ",".join(sorted(seen[name])),
                     **stats, "p50_vs_open": round(stats["p50_ms"] / base["p50_ms"], 3),
                     "round_p50_ms": (f"{min(round_p50[name]):.1f}-{max(round_p50[name]):.1f}"
                                      if round_p50[name] else ""),
                     "appliance_cpu_ms": round(served_ms, 2),
                     "client_cpu_ms": round(client_ms, 2),
                     "cpu_floor_ms": round(CLIENTS * (served_ms + client_ms) / cores, 1),
                     "router_cpu_ms": round(router_ms, 2),
                     "router_floor_ms": round(CLIENTS * router_ms, 1)})
    label = {"on": "held-out, grounding on", "off": "held-out, grounding off",
             **{name: f"{name}, grounding on" for name in CHECKS}}
    eval_rows = [{"questions": label[g], "lang": lang, **r[lang]}
                 for g, r in reports.items() for lang in ("en", "zh", "all")]
    path = write("knowledge-serving", {"eval": reports, "ttft": rows})
    if eval_rows:
        print(table(eval_rows, ["questions", "lang", "answerable", "accuracy",
                                "right_offered", "wrong_fact_rate", "unanswerable",
                                "abstention_recall", "abstention_precision", "declined"]))
    for g, r in reports.items():
        print(f"{label[g]}: modes {r['modes']}, latency p50 {r['latency_p50_s']}")
    print()
    print(table(rows, ["answers", "clients", "modes", "n", "p50_ms", "round_p50_ms", "p99_ms",
                       "p50_vs_open",
                       "appliance_cpu_ms", "client_cpu_ms", "cpu_floor_ms", "router_cpu_ms",
                       "router_floor_ms"]))
    print(f"\nwritten: {path}")
    return {"eval": reports, "ttft": rows, "path": str(path)}
