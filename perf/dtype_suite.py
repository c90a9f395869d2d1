"""Weight dtype on this CPU: the bare vLLM server with the small tier's settings in
bfloat16 and in float32, at 1 and 8 concurrent, plus torch's matmul time for one of the
model's projection shapes. What `dtype = "auto"` picks (serving/cpu_dtype.py) should be
the faster one on this machine."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from kernel.config import load_config
from perf.bare_vllm import bare_vllm
from perf.loadgen import measure_levels, ratio_rows
from perf.report import table, write
from perf.stack import BASE, REPO, free_port, merge, to_toml
from serving.cpu_dtype import cpu_auto_dtype

DTYPES = ("bfloat16", "float32")
LEVELS = {1: 8, 8: 32}  # concurrency: requests
OUTPUT_TOKENS = 64
PROMPT_WORDS = 60
COLUMNS = ["dtype", "concurrency", "out_tok_s", "ratio_vs_bfloat16", "ttft_p50_ms",
           "itl_p50_ms", "errors"]


def _matmul_us(dtype: torch.dtype, repeats: int = 500) -> float:
    """One decode step's worth of a 135M model's MLP projection: 1x576 @ 576x1536."""
    a, w = torch.randn(1, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
    a @ w
    started = time.perf_counter()
    for _ in range(repeats):
        a @ w
    return (time.perf_counter() - started) / repeats * 1e6


def run() -> dict:
    work = Path(tempfile.mkdtemp(prefix="onlycs-perf-dtype-"))
    results: dict[str, dict[int, dict]] = {}
    for dtype in DTYPES:
        settings = merge(BASE, {"models": {"root": str(REPO / "var" / "models")},
                                 "lora": {"root": str(work / "adapters")},
                                 "tiers": {"small": {"dtype": dtype}}})
        path = work / f"{dtype}.toml"
        path.write_text(to_toml(settings) + "\n")
        with bare_vllm(load_config(path), free_port(), work / f"{dtype}.log") as url:
            results[dtype] = measure_levels(url, LEVELS, PROMPT_WORDS, OUTPUT_TOKENS, dtype)
    rows = ratio_rows(results, "dtype", "bfloat16")
    matmul = {d: round(_matmul_us(getattr(torch, d)), 1) for d in DTYPES}
    path = write("dtype", {"rows": rows, "matmul_1x576x1536_us": matmul,
                           "auto_picks": cpu_auto_dtype(), "output_tokens": OUTPUT_TOKENS,
                           "raw": {d: {str(c): r for c, r in v.items()}
                                   for d, v in results.items()}})
    print(table(rows, COLUMNS))
    print(f"\nmatmul 1x576 @ 576x1536: {matmul} us; dtype auto picks {cpu_auto_dtype()}")
    print(f"\nwritten: {path}")
    return {"rows": rows, "path": str(path)}
