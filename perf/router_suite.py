"""Router decision latency (sensitive words + features + intent + rule tree), in-process.

Baseline in the same run: embedding every message with MiniLM before deciding, the
obvious design the cheap path replaces. Rounds alternate between the variants so
machine noise hits all of them alike; p50/p99 are over all rounds.
"""

from __future__ import annotations

import threading
import time
import uuid

from kernel.config import AppConfig
from perf.report import summary_ms, table, write
from serving.pipeline.decide import build_engine
from serving.router.dataset import load

ROUNDS = 5


def _variants(engine, texts: list[str]) -> dict:
    def miss(text: str) -> None:
        engine.decide(text, session_id=uuid.uuid4().hex)

    warm = [uuid.uuid4().hex for _ in texts]
    for sid, text in zip(warm, texts, strict=True):
        engine.decide(text, session_id=sid)
    hits = iter(warm * 1000)

    def hit(text: str) -> None:
        engine.decide(text, session_id=next(hits))

    def miss_with_history(text: str) -> None:
        engine.decide(text, session_id=uuid.uuid4().hex, history=texts[:3])

    def embed_every_message(text: str) -> None:
        engine.decide(text, session_id=uuid.uuid4().hex, full=True)
        engine.embedder().embed(text)

    return {"cache miss": miss, "cache hit": hit, "miss + 3-turn history": miss_with_history,
            "baseline: MiniLM on every message": embed_every_message}


def _timed(fn, texts: list[str], threads: int) -> list[float]:
    samples: list[float] = []
    lock = threading.Lock()

    def worker(chunk: list[str]) -> None:
        local = []
        for text in chunk:
            started = time.perf_counter()
            fn(text)
            local.append(time.perf_counter() - started)
        with lock:
            samples.extend(local)

    chunks = [texts[i::threads] for i in range(threads)]
    pool = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return samples


def run() -> dict:
    engine = build_engine(AppConfig())
    engine.embedder().embed("warm up")
    texts = [r["text"] for r in load()]
    variants = _variants(engine, texts)
    rows = []
    for threads in (1, 8):
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(ROUNDS):
            for name, fn in variants.items():
                samples[name] += _timed(fn, texts, threads)
        base = summary_ms(samples["baseline: MiniLM on every message"])
        for name, values in samples.items():
            stats = summary_ms(values)
            rows.append({"variant": name, "callers": threads, **stats,
                         "p99_vs_baseline": round(stats["p99_ms"] / base["p99_ms"], 3)})
    path = write("router", {"rows": rows, "messages": len(texts), "rounds": ROUNDS,
                            "budget_p99_ms": 2.0})
    print(table(rows, ["variant", "callers", "n", "p50_ms", "p99_ms", "mean_ms",
                       "p99_vs_baseline"]))
    print(f"\nwritten: {path}")
    return {"rows": rows, "path": str(path)}
