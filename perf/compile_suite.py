"""torch.compile on the CPU profile: bare vLLM with the large tier's settings (no LoRA, so
vLLM compiles the model with inductor) against the same engine with `enforce_eager`.

It reports what an operator waits for and what they get: seconds from start to ready with an
empty compile cache (a new machine, or a new model path) and with a warm one, and output
tokens/s at 1, 8 and 32 concurrent. Each variant gets its own VLLM_CACHE_ROOT under a
temporary folder, so nothing from an earlier run is reused by accident."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from kernel.config import load_config
from perf.bare_vllm import bare_vllm
from perf.loadgen import measure_levels, ratio_rows
from perf.report import table, write
from perf.stack import BASE, REPO, free_port, merge, to_toml

VARIANTS = {"compiled": {}, "eager": {"enforce_eager": True}}
LEVELS = {1: 8, 8: 32, 32: 64}  # concurrency: requests
OUTPUT_TOKENS = 64
PROMPT_WORDS = 60
COLUMNS = ["variant", "concurrency", "out_tok_s", "ratio_vs_compiled", "ttft_p50_ms",
           "itl_p50_ms", "errors"]


def _large_tier_as_small(engine_args: dict) -> dict:
    """bare_vllm serves the `small` tier's settings: give it the large tier's."""
    large = load_config(REPO / "config.example.toml").tiers["large"]
    tier = {"enable_lora": False, "max_num_seqs": large.max_num_seqs,
            "max_model_len": large.max_model_len}
    if engine_args:
        tier["engine_args"] = engine_args
    return {"tiers": {"small": tier}}


def _start_seconds(path: Path, log: Path) -> float:
    started = time.monotonic()
    with bare_vllm(load_config(path), free_port(), log):
        return time.monotonic() - started


def run() -> dict:
    work = Path(tempfile.mkdtemp(prefix="onlycs-perf-compile-"))
    results: dict[str, dict[int, dict]] = {}
    starts: dict[str, dict[str, float]] = {}
    for variant, engine_args in VARIANTS.items():
        os.environ["VLLM_CACHE_ROOT"] = str(work / f"cache-{variant}")
        settings = merge(BASE, {"models": {"root": str(REPO / "var" / "models")},
                                "lora": {"root": str(work / "adapters")},
                                **_large_tier_as_small(engine_args)})
        path = work / f"{variant}.toml"
        path.write_text(to_toml(settings) + "\n")
        cold = _start_seconds(path, work / f"{variant}-cold.log")
        started = time.monotonic()
        with bare_vllm(load_config(path), free_port(), work / f"{variant}.log") as url:
            warm = time.monotonic() - started
            starts[variant] = {"cold_start_s": round(cold, 1), "warm_start_s": round(warm, 1)}
            print(f"  {variant:8s} ready in {cold:.0f} s cold, {warm:.0f} s warm", flush=True)
            results[variant] = measure_levels(url, LEVELS, PROMPT_WORDS, OUTPUT_TOKENS,
                                              variant)
    rows = ratio_rows(results, "variant", "compiled")
    path = write("compile", {"rows": rows, "starts": starts, "output_tokens": OUTPUT_TOKENS,
                             "raw": {v: {str(c): r for c, r in by_level.items()}
                                     for v, by_level in results.items()}})
    print(table(rows, COLUMNS))
    print("\nstart to ready: " + ", ".join(
        f"{v} {s['cold_start_s']} s cold / {s['warm_start_s']} s warm" for v, s in starts.items()))
    print(f"\nwritten: {path}")
    return {"rows": rows, "starts": starts, "path": str(path)}
