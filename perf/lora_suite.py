"""LoRA: time from the load call to the first answer served with the adapter, and
throughput with 0, 1 and 4 adapters in use (rounds alternate; ratios against 0), with the
appliance's grouped CPU LoRA ops and with vLLM's own."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from perf.report import table, write
from perf.stack import REPO, appliance

CONCURRENCY = 16
MAX_TOKENS = 32
ROUNDS = 3

ADMIN_KEY_FILE = "var/admin.key"  # security.admin_key_file, relative to the config


async def _burst(url: str, models: list[str]) -> float:
    body = {"max_tokens": MAX_TOKENS, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Tell me about your lamps."}]}
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        replies = await asyncio.gather(*(
            client.post("/v1/chat/completions", json={**body, "model": models[i % len(models)]})
            for i in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    tokens = sum(r.json()["usage"]["completion_tokens"] for r in replies)
    return tokens / elapsed


def _train(work: Path) -> Path:
    out = work / "kb-0"
    trained = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "lora", "train", "--out", str(out),
         "--epochs", "1", "--rank", "8", "--config", str(REPO / "config.example.toml")],
        cwd=REPO, capture_output=True, text=True)
    if trained.returncode:
        raise RuntimeError(trained.stderr[-2000:])
    return out


def _measure(adapter: Path, grouped: bool) -> tuple[dict[str, list[float]], list[float]]:
    """Load-to-serve times and tok/s samples of one appliance. Its large tier runs eager:
    only the small tier is measured, and compiling the large one would add minutes."""
    overrides = {"tiers": {"small": {"cpu_grouped_lora": grouped},
                           "large": {"engine_args": {"enforce_eager": True}}}}
    with appliance(overrides) as (url, work, _):
        root = work / "adapters"
        # Admin endpoints need an admin key even with keys off: the one `serve` wrote.
        admin = {"authorization": f"Bearer {(work / ADMIN_KEY_FILE).read_text().strip()}"}
        load_to_serve = []
        for i in range(4):
            shutil.copytree(adapter, root / f"kb-{i}")
            started = time.perf_counter()
            httpx.post(f"{url}/admin/adapters", json={"name": f"kb-{i}", "path": f"kb-{i}"},
                       headers=admin, timeout=600).raise_for_status()
            httpx.post(f"{url}/v1/chat/completions", timeout=600, json={
                "model": f"small:kb-{i}", "max_tokens": 1,
                "messages": [{"role": "user", "content": "hi"}]}).raise_for_status()
            load_to_serve.append(time.perf_counter() - started)
        variants = {"no adapter": ["small"], "1 adapter": ["small:kb-0"],
                    "4 adapters": [f"small:kb-{i}" for i in range(4)]}
        asyncio.run(_burst(url, ["small"]))  # warm-up
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(ROUNDS):
            for name, models in variants.items():
                samples[name].append(asyncio.run(_burst(url, models)))
    return samples, load_to_serve


def run() -> dict:
    """The appliance's grouped LoRA ops (serving/lora_cpu.py, the default) and vLLM's own
    (`cpu_grouped_lora = false`), each against its own no-adapter rounds."""
    adapter = _train(Path(tempfile.mkdtemp(prefix="onlycs-perf-lora-")))
    rows, raw, load_to_serve = [], {}, []
    for ops, grouped in (("vLLM's ops", False), ("grouped", True)):
        samples, loads = _measure(adapter, grouped)
        raw[ops] = samples
        load_to_serve += loads
        base = statistics.median(samples["no adapter"])
        for name, v in samples.items():
            median = statistics.median(v)
            rows.append({"ops": ops, "variant": name, "median_tok_s": round(median, 1),
                         "min": round(min(v), 1), "max": round(max(v), 1),
                         "ratio_vs_no_adapter": round(median / base, 3)})
        print(f"  {ops}: " + ", ".join(f"{r['variant']} {r['median_tok_s']}"
                                       for r in rows if r["ops"] == ops), flush=True)
    rows.append({"ops": "both", "variant": "load call -> first answer (s), 8 loads",
                 "median_tok_s": round(statistics.median(load_to_serve), 2),
                 "min": round(min(load_to_serve), 2), "max": round(max(load_to_serve), 2)})
    path = write("lora", {"rows": rows, "concurrency": CONCURRENCY, "max_tokens": MAX_TOKENS,
                          "rounds": ROUNDS, "load_to_serve_s": load_to_serve, "raw": raw})
    print(table(rows, ["ops", "variant", "median_tok_s", "min", "max", "ratio_vs_no_adapter"]))
    print(f"\nwritten: {path}")
    return {"rows": rows}
