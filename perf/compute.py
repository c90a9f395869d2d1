"""This machine's compute limit for a model: measured bf16 matmul throughput divided by
the ~2 FLOPs per parameter one generated token costs (attention over a short context is
small next to that for a 135M model)."""

from __future__ import annotations

import os
import time


def peak_matmul_gflops(size: int = 1024, repeats: int = 20, trials: int = 5) -> float:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    a = torch.randn(size, size, dtype=torch.bfloat16)
    b = torch.randn(size, size, dtype=torch.bfloat16)
    torch.mm(a, b)
    best = 0.0
    for _ in range(trials):
        started = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        elapsed = time.perf_counter() - started
        best = max(best, 2 * size**3 * repeats / elapsed / 1e9)
    return best


def token_limit(gflops: float, parameters: int) -> float:
    """Output tokens per second the machine could produce at its measured peak."""
    return gflops * 1e9 / (2 * parameters)
