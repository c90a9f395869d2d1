"""The appliance's pinned `small` against bare vLLM, each measured with the other idle and
nothing of the appliance left running while bare vLLM is measured.

The serving suite keeps every target up for the whole sweep, so the bare server is measured
beside an idle appliance (Ray's daemons, Serve's controller and proxy, the idle engine: 5.5 %
of a core on the 2-core VM, 2026-12-04) and the appliance beside an idle bare server. On two
cores the engines' two OpenMP threads feel any other process at every step, so that setup
charges part of the appliance's background to the baseline. Here the appliance is started
afresh for each round and stopped before the bare server's turn; the bare server (cheap when
idle) stays up. Rounds alternate which goes first. Same prompts and settings as `serving`:
~100-token prompts, 64 output tokens, vLLM's benchmark request function.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from kernel.config import load_config
from perf.bare_vllm import bare_vllm
from perf.loadgen import measure, synthetic_prompts
from perf.report import table, write
from perf.stack import appliance, free_port, process_tree

ROUNDS = 3
POINTS = {1: 32, 8: 64}  # concurrency: requests per round
OUTPUT_TOKENS = 64
PROMPT_WORDS = 60
TARGET_RATIO = 0.95
TARGET_ADDED_TTFT_MS = 15.0
KEYS = ("out_tok_s", "ttft_p50_ms", "itl_p50_ms", "errors")


def _points(url: str, seed: int) -> dict[int, dict[str, Any]]:
    return {level: measure(url, "small", synthetic_prompts(count, PROMPT_WORDS, seed + level),
                           OUTPUT_TOKENS, level)
            for level, count in POINTS.items()}


def _warm(url: str) -> None:
    measure(url, "small", synthetic_prompts(16, PROMPT_WORDS, 999), OUTPUT_TOKENS, 8)


def _appliance_round(seed: int) -> dict[int, dict[str, Any]]:
    with appliance() as (url, _, pid):
        _warm(url)
        router = next(p for p in process_tree(pid) if p.name().startswith("ray::ServeReplica"))
        before = sum(router.cpu_times()[:2])
        points = _points(url, seed)
        cpu_s = sum(router.cpu_times()[:2]) - before
    tokens = sum(p["out_tok_s"] * p["wall_s"] for p in points.values())
    for point in points.values():
        point["router_cpu_ms_per_token"] = round(1000 * cpu_s / tokens, 3)
    return points


def run() -> dict:
    with appliance() as (_, work, _pid):  # only for the config the appliance writes
        config = load_config(work / "config.toml")
    samples: dict[str, list[dict[int, dict[str, Any]]]] = {"appliance small": [],
                                                           "bare vLLM": []}
    with bare_vllm(config, free_port(), Path(work) / "bare.log") as bare_url:
        _warm(bare_url)
        for number in range(ROUNDS):
            order = ["appliance small", "bare vLLM"]
            for target in order if number % 2 == 0 else order[::-1]:
                seed = 100 * number
                points = _appliance_round(seed) if target == "appliance small" else _points(
                    bare_url, seed)
                samples[target].append(points)
                print(f"round {number + 1} {target}: " + ", ".join(
                    f"c={c} {p['out_tok_s']} tok/s TTFT {p['ttft_p50_ms']} ms"
                    for c, p in points.items()), flush=True)
    rows = _rows(samples)
    print(table(rows, list(rows[0])))
    checks = _checks(rows)
    for line in checks:
        print(line)
    path = write("alone", {"rounds": ROUNDS, "points": POINTS, "rows": rows,
                           "checks": checks,
                           "samples": {t: [{c: {k: p.get(k) for k in (*KEYS,
                                                                   "router_cpu_ms_per_token")}
                                            for c, p in r.items()} for r in rounds]
                                       for t, rounds in samples.items()}})
    print(f"wrote {path}")
    return {"rows": rows}


def _median(rounds: list[dict[int, dict[str, Any]]], level: int, key: str) -> float:
    return statistics.median(r[level][key] for r in rounds)


def _rows(samples: dict[str, list[dict[int, dict[str, Any]]]]) -> list[dict]:
    bare = samples["bare vLLM"]
    rows = []
    for target, rounds in samples.items():
        for level in POINTS:
            tok = [r[level]["out_tok_s"] for r in rounds]
            ttft = [r[level]["ttft_p50_ms"] for r in rounds]
            rows.append({
                "target": target, "streams": level,
                "tok/s": round(statistics.median(tok), 1),
                "spread": f"{min(tok)}-{max(tok)}",
                "vs bare": round(statistics.median(tok) / _median(bare, level, "out_tok_s"), 3),
                "TTFT p50 ms": round(statistics.median(ttft), 1),
                "TTFT spread": f"{min(ttft)}-{max(ttft)}",
                "added TTFT ms": round(statistics.median(ttft)
                                       - _median(bare, level, "ttft_p50_ms"), 1),
                "ITL p50 ms": round(_median(rounds, level, "itl_p50_ms"), 1),
                "errors": sum(r[level]["errors"] for r in rounds),
                "router CPU ms/token, both points": (
                    round(_median(rounds, level, "router_cpu_ms_per_token"), 3)
                    if "router_cpu_ms_per_token" in rounds[0][level] else "")})
    return rows


def _checks(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        if row["target"] != "appliance small":
            continue
        ratio_ok = row["vs bare"] >= TARGET_RATIO
        ttft_ok = row["added TTFT ms"] <= TARGET_ADDED_TTFT_MS
        lines.append(f"c={row['streams']}: {row['vs bare']}x bare vLLM "
                     f"({'met' if ratio_ok else 'MISSED'} >= {TARGET_RATIO}), added TTFT "
                     f"{row['added TTFT ms']} ms ({'met' if ttft_ok else 'MISSED'} <= "
                     f"{TARGET_ADDED_TTFT_MS})")
    return lines
