"""Where the `small` tier's engine runs: in a Ray Serve replica of its own (`placement =
"replica"`, the default: every streamed piece is a Ray object from that replica to the
router) or inside the router replica's process (`"router"`: the engine's output reaches
the router as it reaches vLLM's own API server), against the bare vLLM server with the same
engine settings. All three are started once and kept; each round measures every target
at 1, 8 and 32 concurrent, the order rotating from round to round; medians over the rounds
with their spread. Also each appliance's idle memory and its time to ready."""

from __future__ import annotations

import statistics
import time
from contextlib import ExitStack
from typing import Any

from kernel.config import load_config
from perf.bare_vllm import bare_vllm
from perf.loadgen import measure, synthetic_prompts
from perf.report import table, write
from perf.stack import appliance, free_port, memory_by_kind

PLACEMENTS = ("replica", "router")
BARE = "bare vLLM"
LEVELS = {1: 32, 8: 64, 32: 96}  # concurrency: requests per round
ROUNDS = 3
OUTPUT_TOKENS = 64
PROMPT_WORDS = 60
COLUMNS = ["target", "concurrency", "out_tok_s", "out_tok_s_spread", "ratio_vs_bare",
           "ttft_p50_ms", "ttft_p50_ms_spread", "added_ttft_ms", "itl_p50_ms", "errors"]


def _spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def _rows(runs: dict[tuple[str, int], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for level in LEVELS:
        bare = runs[(BARE, level)]
        bare_tok = statistics.median(r["out_tok_s"] for r in bare)
        bare_ttft = statistics.median(r["ttft_p50_ms"] for r in bare)
        for target in (*(f"appliance, {p}" for p in PLACEMENTS), BARE):
            got = runs[(target, level)]
            tok = [r["out_tok_s"] for r in got]
            ttft = [r["ttft_p50_ms"] for r in got]
            rows.append({
                "target": target, "concurrency": level,
                "out_tok_s": round(statistics.median(tok), 1), "out_tok_s_spread": _spread(tok),
                "ratio_vs_bare": round(statistics.median(tok) / bare_tok, 3),
                "ttft_p50_ms": round(statistics.median(ttft), 1),
                "ttft_p50_ms_spread": _spread(ttft),
                "added_ttft_ms": round(statistics.median(ttft) - bare_ttft, 1),
                "itl_p50_ms": round(statistics.median(r["itl_p50_ms"] for r in got), 1),
                "errors": sum(r["errors"] for r in got)})
    return rows


def run() -> dict:
    urls: dict[str, str] = {}
    memory: dict[str, dict] = {}
    ready_s: dict[str, float] = {}
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        pids = {}
        for placement in PLACEMENTS:
            started = time.monotonic()
            url, work, pid = stack.enter_context(
                appliance({"tiers": {"small": {"placement": placement}}}))
            ready_s[placement] = round(time.monotonic() - started, 1)
            urls[f"appliance, {placement}"], pids[placement] = url, pid
            print(f"appliance with placement = {placement} ready in {ready_s[placement]} s",
                  flush=True)
        config = load_config(work / "config.toml")
        urls[BARE] = stack.enter_context(bare_vllm(config, free_port(), work / "bare.log"))
        print("warming up", flush=True)
        for url in urls.values():
            measure(url, "small", synthetic_prompts(16, PROMPT_WORDS, 999), OUTPUT_TOKENS, 8)
        time.sleep(10)  # idle: nothing in flight
        memory = {p: memory_by_kind(pids[p]) for p in PLACEMENTS}
        names = list(urls)
        seed = 0
        for round_ in range(ROUNDS):
            for level, count in LEVELS.items():
                shift = (round_ + level) % len(names)
                for name in names[shift:] + names[:shift]:
                    seed += 1
                    result = measure(urls[name], "small",
                                     synthetic_prompts(count, PROMPT_WORDS, seed),
                                     OUTPUT_TOKENS, level)
                    runs.setdefault((name, level), []).append(
                        {k: v for k, v in result.items() if k != "samples"})
                    print(f"  round {round_ + 1} {name:20s} c={level:<3d} "
                          f"{result['out_tok_s']:6.1f} tok/s, ttft p50 "
                          f"{result['ttft_p50_ms']} ms, errors {result['errors']}", flush=True)
    rows = _rows(runs)
    memory_rows = [{"placement": p, "process": kind, "processes": row["processes"],
                    "idle_rss_mib": row["rss_mib"], "idle_pss_mib": row["pss_mib"]}
                   for p in PLACEMENTS for kind, row in memory[p].items()]
    path = write("placement", {"rows": rows, "memory": memory_rows, "ready_s": ready_s,
                               "rounds": ROUNDS, "output_tokens": OUTPUT_TOKENS,
                               "raw": {f"{n}@{c}": r for (n, c), r in runs.items()}})
    print(table(rows, COLUMNS))
    print(table(memory_rows, list(memory_rows[0])))
    print(f"ready: {ready_s}")
    print(f"\nwritten: {path}")
    return {"rows": rows, "path": str(path)}
