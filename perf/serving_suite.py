"""Serving: the appliance (router `auto`, and the pinned `small` tier) against the bare
vLLM OpenAI server with the small tier's exact engine settings (arguments and
environment, the appliance's CPU tuning included), against that server with vLLM's stock
CPU defaults (at the key level), and against plain transformers one request at a time.
Concurrency sweep 1, 8, 32, 128; within each level the targets run in rotating order so
the machine's noise hits them alike.

Synthetic prompts (distinct, ~100 tokens), 64 output tokens each (ignore_eos), measured
with vLLM's own benchmark request function.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from kernel.config import AppConfig, load_config
from perf.bare_vllm import bare_vllm
from perf.compute import peak_matmul_gflops, token_limit
from perf.hf_baseline import run_sequential
from perf.loadgen import measure, synthetic_prompts
from perf.report import table, write
from perf.stack import appliance, free_port

LEVELS = (1, 8, 32, 128)
OUTPUT_TOKENS = 64
PROMPT_WORDS = 60
# Requests per measurement: enough for steady state at each level, inside ten minutes.
REQUESTS = {1: 6, 8: 24, 32: 96, 128: 160}
KEY_LEVEL = 32  # where the appliance must reach 0.95x bare vLLM: measured twice
HF_REQUESTS = 6
TARGET_RATIO_32 = 0.95
TARGET_HF_RATIO_128 = 15.0
TARGET_ADDED_TTFT_MS = 15.0
TARGET_COMPUTE_SHARE = 0.30

COLUMNS = ["target", "concurrency", "requests", "errors", "req_s", "out_tok_s",
           "ratio_vs_bare", "ratio_vs_hf", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms",
           "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms"]


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
        rounds = 2 if level == KEY_LEVEL else 1
        for r in range(rounds):
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
    return row


def run() -> dict:
    with appliance() as (url, work, _):
        config = load_config(work / "config.toml")
        with bare_vllm(config, free_port(), work / "bare-vllm.log") as bare_url, \
                bare_vllm(config, free_port(), work / "bare-stock.log", stock=True) as stock_url:
            print("warming up the three servers", flush=True)
            for target_url in (url, bare_url, stock_url):
                measure(target_url, "small", synthetic_prompts(8, PROMPT_WORDS, 999),
                        OUTPUT_TOKENS, 8)
            results = _sweep(_targets(url, bare_url, stock_url))
    model_dir = _model_dir(config)
    print("transformers baseline (one request at a time)", flush=True)
    hf = run_sequential(model_dir, synthetic_prompts(HF_REQUESTS, PROMPT_WORDS, 7),
                        OUTPUT_TOKENS)
    gflops = peak_matmul_gflops()
    limit = token_limit(gflops, hf["parameters"])
    rows = _rows(results, hf)
    verdict = _targets_met(rows, limit)
    path = write("serving", {
        "rows": rows, "targets": verdict, "peak_bf16_gflops": round(gflops, 1),
        "compute_limit_tok_s": round(limit, 1), "parameters": hf["parameters"],
        "output_tokens": OUTPUT_TOKENS, "prompt_words": PROMPT_WORDS,
        "raw": {f"{name}@{level}": runs for (name, level), runs in results.items()}})
    print(table(rows, COLUMNS))
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


def _targets_met(rows: list[dict], limit: float) -> dict[str, tuple[bool, str]]:
    small32, bare32 = _row(rows, "appliance small", 32), _row(rows, "bare vLLM", 32)
    auto128 = _row(rows, "appliance auto", 128)
    added_ttft = [_row(rows, t, c)["ttft_p50_ms"] - _row(rows, "bare vLLM", c)["ttft_p50_ms"]
                  for t in ("appliance small",) for c in (1, 8)]
    best = max(r["out_tok_s"] for r in rows if r["target"].startswith("appliance"))
    errors = sum(r["errors"] for r in rows)
    stock32 = _row(rows, STOCK, KEY_LEVEL)
    return {
        "throughput >= 0.95x bare vLLM at 32 (same settings)": (
            small32["ratio_vs_bare"] >= TARGET_RATIO_32,
            f"{small32['ratio_vs_bare']:.3f}x ({small32['out_tok_s']} vs "
            f"{bare32['out_tok_s']} tok/s)"),
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
    }
