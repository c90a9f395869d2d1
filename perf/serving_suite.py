"""Serving: the appliance (router `auto`, and the pinned `small` tier) against the bare
vLLM OpenAI server with the small tier's exact engine settings (arguments and
environment, the appliance's CPU tuning included), against that server with vLLM's stock
CPU defaults (at the key level), and against plain transformers one request at a time.
Concurrency sweep 1, 8, 32 (three rounds of 64 or more requests each, the targets' order
rotating from round to round so the machine's noise hits them alike; medians, with the
spread of the rounds) and 128 (one round). Also: the appliance's time to ready, and the
memory of each of its processes idle and at the peak of the sweep.

Synthetic prompts (distinct, ~100 tokens), 64 output tokens each (ignore_eos), measured
with vLLM's own benchmark request function.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

from kernel.config import AppConfig, load_config
from perf.bare_vllm import bare_vllm
from perf.compute import peak_matmul_gflops, token_limit
from perf.hf_baseline import run_sequential
from perf.loadgen import measure, synthetic_prompts
from perf.report import table, write
from perf.stack import appliance, free_port, memory_by_kind

LEVELS = (1, 8, 32, 128)
OUTPUT_TOKENS = 64
PROMPT_WORDS = 60
# Requests per measurement and rounds per level (the targets: >= 3 x >= 64).
REQUESTS = {1: 64, 8: 64, 32: 96, 128: 160}
ROUNDS = {1: 3, 8: 3, 32: 3, 128: 1}
KEY_LEVEL = 32  # where vLLM's stock defaults are measured too
SPREAD = ("out_tok_s", "ttft_p50_ms")
MEMORY_SAMPLE_S = 2.0
HF_REQUESTS = 6
TARGET_RATIO_32 = 0.95
TARGET_HF_RATIO_128 = 15.0
TARGET_ADDED_TTFT_MS = 15.0
TARGET_COMPUTE_SHARE = 0.30
TARGET_IDLE_GIB = 5.0

COLUMNS = ["target", "concurrency", "requests", "errors", "req_s", "out_tok_s",
           "out_tok_s_spread", "ratio_vs_bare", "ratio_vs_hf", "ttft_p50_ms",
           "ttft_p50_ms_spread", "ttft_p99_ms", "tpot_p50_ms", "itl_p50_ms", "itl_p99_ms",
           "e2e_p50_ms", "e2e_p99_ms"]


STOCK = "bare vLLM, stock CPU defaults"


def _targets(appliance_url: str, bare_url: str, stock_url: str) -> dict[str, tuple]:
    return {"appliance auto": (appliance_url, "auto", LEVELS),
            "appliance small": (appliance_url, "small", LEVELS),
            "bare vLLM": (bare_url, "small", LEVELS),
            STOCK: (stock_url, "small", (KEY_LEVEL,))}


def _sweep(targets: dict[str, tuple]) -> dict[tuple[str, int], list[dict]]:
    results: dict[tuple[str, int], list[dict]] = {}
    names = list(targets)
    seed = 0
    for i, level in enumerate(LEVELS):
        for r in range(ROUNDS[level]):
            shift = (i + r) % len(names)
            for name in names[shift:] + names[:shift]:
                url, model, levels = targets[name]
                if level not in levels:
                    continue
                seed += 1
                prompts = synthetic_prompts(REQUESTS[level], PROMPT_WORDS, seed)
                result = measure(url, model, prompts, OUTPUT_TOKENS, level)
                results.setdefault((name, level), []).append(result)
                print(f"  {name:16s} c={level:<4d} {result['out_tok_s']:7.1f} tok/s "
                      f"ttft p50 {result['ttft_p50_ms']} ms, errors {result['errors']}",
                      flush=True)
    return results


def _merged(runs: list[dict]) -> dict[str, Any]:
    """One row from repeated runs: medians of the rates and latencies, summed counts."""
    if len(runs) == 1:
        return {k: v for k, v in runs[0].items() if k != "samples"}
    row = {k: v for k, v in runs[0].items() if k != "samples"}
    for key, value in row.items():
        if isinstance(value, float):
            row[key] = round(statistics.median(r[key] for r in runs), 3)
    row["requests"] = sum(r["requests"] for r in runs)
    row["errors"] = sum(r["errors"] for r in runs)
    for key in SPREAD:
        row[f"{key}_spread"] = f"{min(r[key] for r in runs):g}-{max(r[key] for r in runs):g}"
    return row


class MemoryPeak:
    """The appliance's memory by process kind, sampled in a thread: the sample with the
    largest total is the peak."""

    def __init__(self, pid: int):
        self.pid, self.peak = pid, memory_by_kind(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(MEMORY_SAMPLE_S):
            now = memory_by_kind(self.pid)
            if now["total"]["rss_mib"] > self.peak["total"]["rss_mib"]:
                self.peak = now

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_rows(idle: dict, peak: dict) -> list[dict]:
    return [{"process": kind, "processes": row["processes"],
             "idle_rss_mib": row["rss_mib"], "idle_pss_mib": row["pss_mib"],
             "peak_rss_mib": peak.get(kind, {}).get("rss_mib"),
             "peak_pss_mib": peak.get(kind, {}).get("pss_mib")}
            for kind, row in idle.items()]


def run() -> dict:
    started = time.monotonic()
    with appliance() as (url, work, pid):
        ready_s = round(time.monotonic() - started, 1)
        print(f"appliance ready in {ready_s} s", flush=True)
        config = load_config(work / "config.toml")
        with bare_vllm(config, free_port(), work / "bare-vllm.log") as bare_url, \
                bare_vllm(config, free_port(), work / "bare-stock.log", stock=True) as stock_url:
            print("warming up the three servers", flush=True)
            for target_url in (url, bare_url, stock_url):
                measure(target_url, "small", synthetic_prompts(8, PROMPT_WORDS, 999),
                        OUTPUT_TOKENS, 8)
            time.sleep(10)  # idle: nothing in flight
            idle = memory_by_kind(pid)
            with MemoryPeak(pid) as memory:
                results = _sweep(_targets(url, bare_url, stock_url))
    memory_table = memory_rows(idle, memory.peak)
    model_dir = _model_dir(config)
    print("transformers baseline (one request at a time)", flush=True)
    hf = run_sequential(model_dir, synthetic_prompts(HF_REQUESTS, PROMPT_WORDS, 7),
                        OUTPUT_TOKENS)
    gflops = peak_matmul_gflops()
    limit = token_limit(gflops, hf["parameters"])
    rows = _rows(results, hf)
    verdict = _targets_met(rows, limit, idle)
    path = write("serving", {
        "rows": rows, "targets": verdict, "peak_bf16_gflops": round(gflops, 1),
        "compute_limit_tok_s": round(limit, 1), "parameters": hf["parameters"],
        "output_tokens": OUTPUT_TOKENS, "prompt_words": PROMPT_WORDS,
        "appliance_ready_s": ready_s, "memory": memory_table,
        "raw": {f"{name}@{level}": runs for (name, level), runs in results.items()}})
    print(table(rows, COLUMNS))
    print(table(memory_table, list(memory_table[0])))
    print(f"appliance ready in {ready_s} s")
    print(f"\nmachine: bf16 matmul peak {gflops:.0f} GFLOP/s -> compute limit "
          f"{limit:.0f} tok/s for {hf['parameters'] / 1e6:.0f}M parameters")
    for name, (met, detail) in verdict.items():
        print(f"  [{'met' if met else 'MISSED'}] {name}: {detail}")
    print(f"\nwritten: {path}")
    return {"rows": rows, "targets": verdict, "path": str(path)}


def _model_dir(config: AppConfig) -> Path:
    from models.registry import model_dir

    return model_dir(config, config.tiers["small"])


def _rows(results: dict[tuple[str, int], list[dict]], hf: dict) -> list[dict]:
    rows = []
    for level in LEVELS:
        bare = _merged(results[("bare vLLM", level)])
        for name in ("appliance auto", "appliance small", "bare vLLM", STOCK):
            if (name, level) not in results:
                continue
            row = {"target": name, **_merged(results[(name, level)])}
            row["ratio_vs_bare"] = round(row["out_tok_s"] / bare["out_tok_s"], 3)
            row["ratio_vs_hf"] = round(row["out_tok_s"] / hf["out_tok_s"], 1)
            rows.append(row)
    rows.append({"target": "transformers, one at a time", **hf, "ratio_vs_hf": 1.0,
                 "ratio_vs_bare": None})
    return rows


def _row(rows: list[dict], target: str, level: int) -> dict:
    return next(r for r in rows if r["target"] == target and r["concurrency"] == level)


def _targets_met(rows: list[dict], limit: float, idle: dict) -> dict[str, tuple[bool, str]]:
    small32 = _row(rows, "appliance small", 32)
    ratios = {c: _row(rows, "appliance small", c)["ratio_vs_bare"] for c in (1, 8, 32)}
    idle_gib = idle["total"]["rss_mib"] / 1024
    auto128 = _row(rows, "appliance auto", 128)
    added_ttft = [_row(rows, t, c)["ttft_p50_ms"] - _row(rows, "bare vLLM", c)["ttft_p50_ms"]
                  for t in ("appliance small",) for c in (1, 8)]
    best = max(r["out_tok_s"] for r in rows if r["target"].startswith("appliance"))
    errors = sum(r["errors"] for r in rows)
    stock32 = _row(rows, STOCK, KEY_LEVEL)
    return {
        "throughput >= 0.95x bare vLLM at 1, 8, 32 (same settings)": (
            min(ratios.values()) >= TARGET_RATIO_32,
            ", ".join(f"{ratio:.3f}x at {c}" for c, ratio in ratios.items())),
        "throughput >= 0.95x bare vLLM at 32 (vLLM's stock CPU defaults)": (
            small32["out_tok_s"] / stock32["out_tok_s"] >= TARGET_RATIO_32,
            f"{small32['out_tok_s'] / stock32['out_tok_s']:.3f}x ({small32['out_tok_s']} vs "
            f"{stock32['out_tok_s']} tok/s)"),
        ">= 15x transformers at 128": (
            auto128["ratio_vs_hf"] >= TARGET_HF_RATIO_128, f"{auto128['ratio_vs_hf']}x"),
        "added median TTFT <= 15 ms (c=1, 8)": (
            max(added_ttft) <= TARGET_ADDED_TTFT_MS,
            ", ".join(f"{a:+.1f} ms" for a in added_ttft)),
        ">= 30% of compute limit": (
            best / limit >= TARGET_COMPUTE_SHARE,
            f"{best / limit:.1%} (best appliance {best} tok/s of {limit:.0f})"),
        "no errors": (errors == 0, f"{errors} failed requests"),
        "idle RSS of all appliance processes <= 5 GiB": (
            idle_gib <= TARGET_IDLE_GIB,
            f"{idle_gib:.2f} GiB RSS, {idle['total']['pss_mib'] / 1024:.2f} GiB PSS"),
    }
