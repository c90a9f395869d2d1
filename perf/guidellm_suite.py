"""GuideLLM (a harness nobody in this project wrote) as the second measure of the serving
overhead: the appliance's pinned `small` tier against the bare vLLM OpenAI server with the
same engine settings, 100-token synthetic prompts, 64 output tokens, 1, 8 and 32 concurrent
streams, three rounds of 64 requests per point after a warm-up of 32 requests per target,
the order alternating; medians and the rounds' range.

GuideLLM runs from a venv of its own (`var/guidellm-venv`, made on first use) so its
dependencies never meet the appliance's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from kernel.config import load_config
from models.registry import model_dir
from perf.bare_vllm import bare_vllm
from perf.loadgen import measure, synthetic_prompts
from perf.report import table, write
from perf.stack import REPO, appliance, free_port

GUIDELLM_VERSION = "0.8.1"
VENV = REPO / "var" / "guidellm-venv"
STREAMS = (1, 8, 32)
REQUESTS = 64
ROUNDS = 3
PROMPT_TOKENS, OUTPUT_TOKENS = 100, 64
TARGET_RATIO, TARGET_ADDED_TTFT_MS = 0.95, 15.0
COLUMNS = ["target", "streams", "rounds", "out_tok_s", "out_tok_s_spread", "ratio_vs_bare",
           "ttft_p50_ms", "ttft_p50_ms_spread", "added_ttft_ms", "errors"]


def guidellm() -> Path:
    exe = VENV / "bin" / "guidellm"
    if not exe.exists():
        print(f"installing guidellm {GUIDELLM_VERSION} into {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q",
                        f"guidellm=={GUIDELLM_VERSION}"], check=True)
    return exe


def scenario(url: str, model: str, tokenizer: Path, output: Path) -> dict[str, Any]:
    return {
        "spec": {
            # The appliance has GET /health now; validation stays on to prove it.
            "backend": {"kind": "openai_http", "target": url, "model": model,
                        "request_format": "/v1/chat/completions"},
            "profile": {"kind": "concurrent"},
            "data": [{"kind": "synthetic_text", "prompt_tokens": PROMPT_TOKENS,
                      "output_tokens": OUTPUT_TOKENS}],
            "tokenizer": {"kind": "huggingface_auto", "model": str(tokenizer)},
            "constraints": [{"kind": "max_requests", "count": REQUESTS}],
            "outputs": [{"kind": "json", "path": str(output)}],
        },
        "benchmarks": [{"profile.streams": streams} for streams in STREAMS],
    }


def run_guidellm(exe: Path, url: str, model: str, tokenizer: Path, work: Path,
                 tag: str) -> list[dict[str, Any]]:
    output = work / f"{tag}.json"
    config = work / f"{tag}-scenario.json"
    config.write_text(json.dumps(scenario(url, model, tokenizer, output)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run([str(exe), "run", "--scenario", str(config), "--disable-progress"],
                   check=True, env=env, cwd=work, stdout=subprocess.DEVNULL)
    return points(json.loads(output.read_text()))


def points(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per benchmark of a GuideLLM JSON report: streams, output tok/s, TTFT p50."""
    rows = []
    for bench in report["benchmarks"]:
        metrics = bench["metrics"]
        rows.append({
            "streams": _streams(bench),
            "out_tok_s": metrics["output_tokens_per_second"]["successful"]["mean"],
            "ttft_p50_ms": metrics["time_to_first_token_ms"]["successful"]["median"],
            "errors": metrics["request_totals"]["errored"],
        })
    return rows


def _streams(bench: dict[str, Any]) -> int:
    strategy = bench["config"]["strategy"]
    return int(strategy.get("streams") or strategy.get("max_concurrency"))


def summary(samples: dict[str, list[list[dict]]]) -> list[dict[str, Any]]:
    rows = []
    for streams in STREAMS:
        per = {name: [p for run in runs for p in run if p["streams"] == streams]
               for name, runs in samples.items()}
        bare_tok = statistics.median(p["out_tok_s"] for p in per["bare vLLM"])
        bare_ttft = statistics.median(p["ttft_p50_ms"] for p in per["bare vLLM"])
        for name, got in per.items():
            tok = [p["out_tok_s"] for p in got]
            ttft = [p["ttft_p50_ms"] for p in got]
            rows.append({
                "target": name, "streams": streams, "rounds": len(got),
                "out_tok_s": round(statistics.median(tok), 1),
                "out_tok_s_spread": f"{min(tok):.1f}-{max(tok):.1f}",
                "ratio_vs_bare": round(statistics.median(tok) / bare_tok, 3),
                "ttft_p50_ms": round(statistics.median(ttft), 1),
                "ttft_p50_ms_spread": f"{min(ttft):.0f}-{max(ttft):.0f}",
                "added_ttft_ms": round(statistics.median(ttft) - bare_ttft, 1),
                "errors": sum(p["errors"] for p in got)})
    return rows


def run() -> dict:
    exe = guidellm()
    work = Path(tempfile.mkdtemp(prefix="onlycs-guidellm-"))
    samples: dict[str, list[list[dict]]] = {"appliance small": [], "bare vLLM": []}
    with appliance() as (url, appliance_work, _):
        config = load_config(appliance_work / "config.toml")
        tokenizer = model_dir(config, config.tiers["small"])
        with bare_vllm(config, free_port(), work / "bare-vllm.log") as bare_url:
            urls = {"appliance small": url, "bare vLLM": bare_url}
            # Engines that served nothing yet are slow for their first requests (the
            # 2026-12-02 run without this: each target's first round was its slowest, the
            # appliance's at 32 160 tok/s against 307-312 later): warm both alike first.
            for target in urls.values():
                measure(target, "small", synthetic_prompts(32, 75, 999), 16, 32)
            for rnd in range(ROUNDS):
                order = list(urls) if rnd % 2 == 0 else list(urls)[::-1]
                for name in order:
                    got = run_guidellm(exe, urls[name], "small", tokenizer, work,
                                       f"{name.split()[0]}-{rnd}")
                    samples[name].append(got)
                    print(f"  round {rnd} {name:16s} " + ", ".join(
                        f"c={p['streams']} {p['out_tok_s']:.1f} tok/s ttft "
                        f"{p['ttft_p50_ms']:.0f} ms" for p in got), flush=True)
    rows = summary(samples)
    small = {r["streams"]: r for r in rows if r["target"] == "appliance small"}
    verdict = {
        "appliance small >= 0.95x bare vLLM at 1, 8, 32": (
            all(r["ratio_vs_bare"] >= TARGET_RATIO for r in small.values()),
            ", ".join(f"{r['ratio_vs_bare']:.3f}x at {c}" for c, r in small.items())),
        "added median TTFT <= 15 ms at 1 and 8": (
            all(small[c]["added_ttft_ms"] <= TARGET_ADDED_TTFT_MS for c in (1, 8)),
            ", ".join(f"{small[c]['added_ttft_ms']:+.1f} ms at {c}" for c in (1, 8))),
    }
    path = write("guidellm", {"rows": rows, "targets": verdict, "raw": samples,
                              "guidellm": GUIDELLM_VERSION})
    print(table(rows, COLUMNS))
    for name, (met, detail) in verdict.items():
        print(f"  [{'met' if met else 'MISSED'}] {name}: {detail}")
    print(f"\nwritten: {path}")
    return {"rows": rows, "targets": verdict, "path": str(path)}
