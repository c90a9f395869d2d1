"""Knowledge-base retrieval latency (BM25 + multilingual-e5, fused, plus the mode choice),
in-process, for the shipped knowledge base and a generated larger one.

Baseline in the same run: the router's own decision for the same questions (retrieval has
to fit beside it), and BM25 alone (what the dense half costs). Rounds alternate between the
variants; p50/p99 are over all rounds. The embedder (multilingual-e5-small, 4-bit) is also
compared with the router's English MiniLM on the held-out questions' top-1 retrieval.
"""

from __future__ import annotations

import os
import time

from kernel.config import AppConfig
from knowledge.embedder import E5Small
from knowledge.entries import Entry, KnowledgeBase
from knowledge.files import read_file
from knowledge.heldout import load as load_questions
from knowledge.lumen import SHIPPED
from knowledge.modes import Thresholds, choose
from knowledge.retrieval import EmbeddingCache, Retriever
from perf.report import summary_ms, table, write
from serving.pipeline.decide import build_engine

ROUNDS = 3
LARGE = int(os.environ.get("ONLYCS_PERF_KB_ENTRIES", "10000"))


def generated(count: int, base: list[Entry]) -> list[Entry]:
    """`count` entries: the shipped ones, then made-up products with a price each."""
    out = list(base)
    for i in range(count - len(base)):
        name = f"Model {i:05d} lamp"
        out.append(Entry(id=f"gen-{i:05d}", questions={"en": [f"How much is the {name}?"]},
                         answers={"en": f"The {name} costs {10 + i % 90}.90 euros."},
                         mentions=[name]))
    return out


class _MiniLM:
    """The router's English all-MiniLM-L6-v2 behind the retriever's embedder interface."""

    name, dim = "all-MiniLM-L6-v2", 384

    def __init__(self, engine) -> None:
        self._model = engine.embedder()

    def queries(self, texts):
        import numpy as np

        return np.stack([self._model.embed(t) for t in texts])

    passages = queries


def compare_embedders(shipped: list[Entry], cache: EmbeddingCache, engine) -> list[dict]:
    """Top-1 retrieval on the held-out answerable questions, per language."""
    rows = []
    kb = KnowledgeBase.of(1, shipped)
    for name, retriever in [("multilingual-e5-small q4 + BM25", Retriever(kb, cache)),
                            ("all-MiniLM-L6-v2 + BM25",
                             Retriever(kb, EmbeddingCache(_MiniLM(engine)))),
                            ("BM25 alone", Retriever(kb, None))]:
        row: dict = {"retrieval": name}
        for lang in ("en", "zh"):
            asked = [q for q in load_questions() if q["entry"] and q["lang"] == lang]
            right = sum(retriever.search(q["question"], 1)[0].entry.id == q["entry"]
                        for q in asked)
            row[f"top1_{lang}"] = f"{right}/{len(asked)}"
        rows.append(row)
    return rows


def _timed(fn, texts: list[str]) -> list[float]:
    samples = []
    for text in texts:
        started = time.perf_counter()
        fn(text)
        samples.append(time.perf_counter() - started)
    return samples


def run() -> dict:
    questions = [r["question"] for r in load_questions()]
    shipped = read_file(SHIPPED)
    cache = EmbeddingCache(E5Small())
    engine = build_engine(AppConfig())
    thresholds = Thresholds()
    started = time.perf_counter()
    small = Retriever(KnowledgeBase.of(1, shipped), cache)
    index_shipped_s = time.perf_counter() - started
    started = time.perf_counter()
    large = Retriever(KnowledgeBase.of(1, generated(LARGE, shipped)), cache)
    index_large_s = time.perf_counter() - started
    lexical = Retriever(KnowledgeBase.of(1, shipped), None)
    variants = {
        "router decision (baseline)": lambda t: engine.decide(t),
        "BM25 only, shipped KB": lambda t: choose(lexical.search(t), None, thresholds),
        f"hybrid, shipped KB ({len(shipped)})": lambda t: choose(small.search(t), None,
                                                                 thresholds),
        f"hybrid, generated KB ({LARGE})": lambda t: choose(large.search(t), None,
                                                            thresholds),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name, fn in variants.items():
            samples[name] += _timed(fn, questions)
    base = summary_ms(samples["router decision (baseline)"])
    rows = []
    for name, values in samples.items():
        stats = summary_ms(values)
        rows.append({"variant": name, **stats,
                     "p50_vs_router": round(stats["p50_ms"] / base["p50_ms"], 1)})
    embedders = compare_embedders(shipped, cache, engine)
    path = write("knowledge", {"rows": rows, "embedders": embedders,
                               "questions": len(questions), "rounds": ROUNDS,
                               "index_seconds": {"shipped": round(index_shipped_s, 1),
                                                 f"generated_{LARGE}": round(index_large_s, 1)}})
    print(table(rows, ["variant", "n", "p50_ms", "p99_ms", "mean_ms", "p50_vs_router"]))
    print()
    print(table(embedders, ["retrieval", "top1_en", "top1_zh"]))
    print(f"index build: shipped {index_shipped_s:.1f} s, generated {index_large_s:.1f} s")
    print(f"\nwritten: {path}")
    return {"rows": rows, "path": str(path)}
