"""Sessions: 3000 concurrent customer sessions against the CPU profile, each three
streamed turns with think time between them, started over a short ramp.

The appliance runs with its default admission bound, so beyond what the engines can
hold it answers 503 + Retry-After (or 429 per key); a session honours Retry-After and
tries again. Counted: sessions completed, refusals (429/503 with Retry-After; per turn
too: the most one turn got), and failures of any other kind (must be zero). A turn's
latency runs from its first try to its [DONE], refusals and their waits included.
`ONLYCS_PERF_ADMISSION_WAIT_S` sets `limits.admission_wait_s` (0: refused at once).
Sampled every two seconds: the resident memory and open file descriptors of every
appliance process.

Baseline in the same run: the same appliance idle, before the load (memory, fds).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import statistics
import threading
import time
from collections import Counter

import aiohttp

from perf.report import table, write
from perf.stack import appliance, process_tree

SESSIONS = 3000
TURNS = 3
RAMP_S = 20.0
THINK_S = (2.0, 8.0)
REPLY_TOKENS = 8
MAX_ATTEMPTS = 60  # per turn; a session gives up (counted as failed) after this many 503s
SAMPLE_EVERY_S = 2.0
WAIT_ENV = "ONLYCS_PERF_ADMISSION_WAIT_S"


def customer_lines() -> list[str]:
    """A realistic mix: the routing dataset's held-out messages (chit-chat, complaints,
    orders, hand-offs) and the knowledge base's held-out fact questions, half each."""
    from knowledge.heldout import load as heldout
    from serving.router.dataset import load as routing

    messages = [r["text"] for r in routing("holdout")]
    facts = [r["question"] for r in heldout()]
    return messages + random.Random(7).sample(facts * 2, len(messages))


class Tally:
    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.refusals: Counter[int] = Counter()
        self.refusals_per_turn: dict[str, int] = {}  # 503/429s before the turn's answer
        self.refusals_without_retry_after = 0
        self.errors: Counter[str] = Counter()
        self.open_streams = 0
        self.peak_open_streams = 0
        self.active_sessions = 0
        self.peak_active_sessions = 0
        self.turn_latency: list[float] = []
        self.latency_by_mode: dict[str, list[float]] = {}


async def _turn(http: aiohttp.ClientSession, url: str, session_id: str, text: str,
                tally: Tally, turn_key: str) -> bool:
    body = {"model": "auto", "max_tokens": REPLY_TOKENS, "stream": True, "user": session_id,
            "messages": [{"role": "user", "content": text}]}
    started = time.perf_counter()  # a turn's latency is the customer's: from its first try
    for attempt in range(MAX_ATTEMPTS):
        tally.refusals_per_turn[turn_key] = attempt
        try:
            async with http.post(f"{url}/v1/chat/completions", json=body) as response:
                if response.status in (429, 503):
                    tally.refusals[response.status] += 1
                    retry_after = response.headers.get("retry-after")
                    if retry_after is None:
                        tally.refusals_without_retry_after += 1
                    await asyncio.sleep(float(retry_after or 1) * random.uniform(1.0, 1.5))
                    continue
                if response.status != 200:
                    tally.errors[f"HTTP {response.status}"] += 1
                    return False
                tally.open_streams += 1
                tally.peak_open_streams = max(tally.peak_open_streams, tally.open_streams)
                try:
                    done = False
                    async for line in response.content:
                        if line.startswith(b"data: [DONE]"):
                            done = True
                finally:
                    tally.open_streams -= 1
                if not done:
                    tally.errors["stream ended without [DONE]"] += 1
                    return False
                elapsed = time.perf_counter() - started
                tally.turn_latency.append(elapsed)
                route = response.headers.get("x-onlycs-route", "")
                mode = route.split("mode=")[1].split(";")[0] if "mode=" in route else "none"
                tally.latency_by_mode.setdefault(mode, []).append(elapsed)
                return True
        except (TimeoutError, aiohttp.ClientError) as exc:
            tally.errors[type(exc).__name__] += 1
            return False
    tally.refusals_per_turn[turn_key] = MAX_ATTEMPTS
    tally.errors["gave up after retries"] += 1
    return False


async def _session(http: aiohttp.ClientSession, url: str, delay: float, tally: Tally,
                   lines: list[str]) -> None:
    await asyncio.sleep(delay)
    session_id = f"load-{secrets.token_hex(6)}"
    tally.active_sessions += 1
    tally.peak_active_sessions = max(tally.peak_active_sessions, tally.active_sessions)
    try:
        for turn in range(TURNS):
            if not await _turn(http, url, session_id, random.choice(lines), tally,
                               f"{session_id}/{turn}"):
                tally.outcomes["failed"] += 1
                return
            if turn < TURNS - 1:
                await asyncio.sleep(random.uniform(*THINK_S))
        tally.outcomes["completed"] += 1
    finally:
        tally.active_sessions -= 1


async def _load(url: str, tally: Tally) -> float:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=1800, sock_connect=60)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        lines = customer_lines()
        await asyncio.gather(*(_session(http, url, RAMP_S * i / SESSIONS, tally, lines)
                               for i in range(SESSIONS)))
    return time.perf_counter() - started


def _footprint(pid: int) -> tuple[float, int]:
    rss, fds = 0, 0
    for proc in process_tree(pid):
        try:
            rss += proc.memory_info().rss
            fds += proc.num_fds()
        except Exception:  # a process that just exited
            continue
    return rss / 2**20, fds


def run() -> dict:
    tally = Tally()
    samples: list[dict] = []
    limits: dict = {"max_pending_per_tier": 512}
    if WAIT_ENV in os.environ:  # e.g. 0: refused at once, as before the line existed
        limits["admission_wait_s"] = float(os.environ[WAIT_ENV])
    with appliance({"limits": limits}) as (url, _, pid):
        idle = [_footprint(pid) for _ in range(3)]
        stop = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while not stop.is_set():
                rss, fds = _footprint(pid)
                samples.append({"t_s": round(time.monotonic() - started, 1),
                                "rss_mib": round(rss), "fds": fds,
                                "active_sessions": tally.active_sessions,
                                "open_streams": tally.open_streams})
                stop.wait(SAMPLE_EVERY_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        elapsed = asyncio.run(_load(url, tally))
        stop.set()
        sampler.join()
        after = [_footprint(pid) for _ in range(3)]
    idle_rss = statistics.median(r for r, _ in idle)
    peak_rss = max(s["rss_mib"] for s in samples)
    latency = sorted(tally.turn_latency)
    refused_turns = sorted(tally.refusals_per_turn.values())
    summary = {
        "sessions": SESSIONS, "turns_each": TURNS,
        "admission_wait_s": limits.get("admission_wait_s", "default"),
        "completed": tally.outcomes["completed"], "failed": tally.outcomes["failed"],
        "refused_503": tally.refusals[503], "refused_429": tally.refusals[429],
        "refusals_without_retry_after": tally.refusals_without_retry_after,
        "turns_refused_at_least_once": sum(n > 0 for n in refused_turns),
        "refusals_of_one_turn_p99": (refused_turns[int(len(refused_turns) * 0.99)]
                                     if refused_turns else None),
        "refusals_of_one_turn_max": refused_turns[-1] if refused_turns else None,
        "errors": dict(tally.errors),
        "peak_active_sessions": tally.peak_active_sessions,
        "peak_open_streams": tally.peak_open_streams,
        "elapsed_s": round(elapsed, 1),
        "turn_latency_p50_s": round(latency[len(latency) // 2], 2) if latency else None,
        "turn_latency_p99_s": round(latency[int(len(latency) * 0.99)], 2) if latency else None,
        "idle_rss_mib": round(idle_rss), "peak_rss_mib": peak_rss,
        "after_rss_mib": round(statistics.median(r for r, _ in after)),
        "peak_over_idle": round(peak_rss / idle_rss, 3),
        "idle_fds": idle[0][1], "peak_fds": max(s["fds"] for s in samples),
        "after_fds": after[-1][1],
    }
    by_mode = [{"mode": mode, "turns": len(v),
                "p50_s": round(sorted(v)[len(v) // 2], 3),
                "p99_s": round(sorted(v)[min(len(v) - 1, int(len(v) * 0.99))], 3)}
               for mode, v in sorted(tally.latency_by_mode.items())]
    path = write("sessions", {"summary": summary, "by_mode": by_mode, "samples": samples,
                              "ramp_s": RAMP_S, "think_s": THINK_S,
                              "reply_tokens": REPLY_TOKENS})
    over_time = samples[:: max(1, len(samples) // 12)]
    print(table(over_time, ["t_s", "active_sessions", "open_streams", "rss_mib", "fds"]))
    print()
    print(table([{"metric": k, "value": v} for k, v in summary.items()], ["metric", "value"]))
    print()
    print(table(by_mode, ["mode", "turns", "p50_s", "p99_s"]))
    unexpected = summary["failed"] + summary["refusals_without_retry_after"]
    print(f"\n[{'met' if unexpected == 0 else 'MISSED'}] zero unexpected failures "
          f"({unexpected}); memory peak {summary['peak_over_idle']}x idle, "
          f"{summary['after_rss_mib']} MiB after vs {summary['idle_rss_mib']} MiB idle")
    print(f"\nwritten: {path}")
    return {"summary": summary, "path": str(path)}
