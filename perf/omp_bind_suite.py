"""Where the engines' OpenMP threads run, measured in the whole appliance: `all` (the
default: one thread on every core) against vLLM's `auto` (every core but one, which stays
free for the scheduler's Python, the replicas and the router). The appliance is started
afresh for each variant in each round, the order alternating; the pinned `small` tier at
1, 8 and 32 concurrent and the router's `auto` (retrieval and routing in the router's
process beside the engine) at 8 and 32; medians over the rounds with their spread."""

from __future__ import annotations

import statistics
from typing import Any

from perf.loadgen import measure, synthetic_prompts
from perf.report import table, write
from perf.stack import appliance

VARIANTS = ("all", "auto")
LEVELS = {1: 32, 8: 64, 32: 96}  # concurrency: requests
POINTS = [("small", level) for level in LEVELS] + [("auto", 8), ("auto", 32)]
ROUNDS = 3
OUTPUT_TOKENS = 64
PROMPT_WORDS = 60
COLUMNS = ["bind", "model", "concurrency", "out_tok_s", "out_tok_s_spread", "ratio_vs_all",
           "ttft_p50_ms", "ttft_p50_ms_spread", "itl_p50_ms", "errors"]


def _one_start(bind: str, seed: int) -> dict[tuple[str, int], dict[str, Any]]:
    tiers = {"small": {"cpu_omp_threads_bind": bind}}  # large runs on small's engine
    with appliance({"tiers": tiers}) as (url, _work, _pid):
        measure(url, "small", synthetic_prompts(16, PROMPT_WORDS, 999), OUTPUT_TOKENS, 8)
        results = {}
        for model, level in POINTS:
            got = measure(url, model, synthetic_prompts(LEVELS[level], PROMPT_WORDS,
                                                        seed + level), OUTPUT_TOKENS, level)
            results[(model, level)] = got
            print(f"  bind={bind:4s} {model:5s} c={level:<3d} {got['out_tok_s']:6.1f} tok/s, "
                  f"ttft p50 {got['ttft_p50_ms']} ms", flush=True)
    return results


def _spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


Runs = dict[str, list[dict[tuple[str, int], dict[str, Any]]]]


def _rows(runs: Runs) -> list[dict[str, Any]]:
    rows = []
    for point in POINTS:
        model, level = point
        base = statistics.median(r[point]["out_tok_s"] for r in runs["all"])
        for bind in VARIANTS:
            tok = [r[point]["out_tok_s"] for r in runs[bind]]
            ttft = [r[point]["ttft_p50_ms"] for r in runs[bind]]
            itl = [r[point]["itl_p50_ms"] for r in runs[bind]]
            rows.append({"bind": bind, "model": model, "concurrency": level,
                         "out_tok_s": round(statistics.median(tok), 1),
                         "out_tok_s_spread": _spread(tok),
                         "ratio_vs_all": round(statistics.median(tok) / base, 3),
                         "ttft_p50_ms": round(statistics.median(ttft), 1),
                         "ttft_p50_ms_spread": _spread(ttft),
                         "itl_p50_ms": round(statistics.median(itl), 1),
                         "errors": sum(r[point]["errors"] for r in runs[bind])})
    return rows


def run() -> dict:
    runs: Runs = {bind: [] for bind in VARIANTS}
    for round_ in range(ROUNDS):
        order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
        for bind in order:
            print(f"round {round_ + 1}: appliance with cpu_omp_threads_bind = {bind}",
                  flush=True)
            runs[bind].append(_one_start(bind, seed=100 * round_))
    rows = _rows(runs)
    path = write("omp-bind", {"rows": rows, "rounds": ROUNDS, "output_tokens": OUTPUT_TOKENS,
                              "raw": {bind: [{f"{m} {c}": {k: v for k, v in r.items()
                                                            if k != "samples"}
                                              for (m, c), r in one.items()} for one in starts]
                                      for bind, starts in runs.items()}})
    print(table(rows, COLUMNS))
    print(f"\nwritten: {path}")
    return {"rows": rows, "path": str(path)}
