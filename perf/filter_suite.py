"""The streaming output filter's cost per character as an answer grows, in-process.

The filter used to hold back an unbroken letter/digit run whole and scan it again on every
piece: quadratic (a review measured 1.6 s for 1,000 characters, 12 s for 2,000). It must be
linear: the time per character of a 20,000-character run about that of a 1,000-character
one. Each length is fed in 3-character pieces (about a token), as a forced structured
output would stream it. Baseline in the same run: ordinary prose of the same length,
words and spaces, which was never held back long. Rounds alternate the variants.

Then what a stream holds back of ordinary answers: the shipped knowledge base's answers, in
Chinese one character per piece and in English four (about a token each), through the
shipped filter and, as the baseline, the same filter with the e-mail pattern it had before
2026-12-04 (any word characters in the local part, Chinese ones included): characters held
back per piece and pieces before the first text.

Then the same through the served path (`FILTER_SERVED=1`, the default; 0 skips it): the
bundled model forced by structured output to stream one unbroken 20,000-character run
(a 25-letter token of its vocabulary, 800 times), streamed through the router's filter.
The baseline is the stream itself: a filter whose work grows with what came before makes
the last tokens arrive further apart than the first; a linear one does not.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import time
from pathlib import Path

import httpx
import regex

from kernel.config import load_config
from knowledge.files import read_file
from knowledge.lumen import SHIPPED
from models.registry import model_dir
from perf.report import table, write
from perf.stack import appliance
from serving.safety import PATTERNS, OutputFilter

LENGTHS = (1_000, 2_000, 5_000, 10_000, 20_000)
ROUNDS = 5
PIECE = 3
PROSE = "the lamp ships in two days and the shade is linen "
SERVED = os.environ.get("FILTER_SERVED", "1") == "1"
FORCED_TOKEN, FORCED_REPEATS = "ManagementPlaneProtection", 800  # one token of SmolLM2's
SERVED_ROUNDS = 3
EDGE = 100  # chunks compared at each end of the stream
# The e-mail pattern before 2026-12-04, the hold table's baseline.
WORD_LOCAL_PART = regex.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
HOLD_PIECE = {"zh": 1, "en": 4}


def _texts(length: int) -> dict[str, str]:
    run = ("ab7" * (length // 3 + 1))[:length]
    prose = (PROSE * (length // len(PROSE) + 1))[:length]
    return {"unbroken run": run, "baseline: prose": prose}


def _stream_s(output_filter: OutputFilter, text: str) -> float:
    stream = output_filter.stream()
    started = time.perf_counter()
    sent = [stream.feed(text[i:i + PIECE]) for i in range(0, len(text), PIECE)]
    sent.append(stream.flush())
    elapsed = time.perf_counter() - started
    if len("".join(sent)) != len(text):
        raise AssertionError("the filter lost or added characters")
    return elapsed


# The same patterns passed explicitly: every piece scanned by each of them, as every piece
# was before 2026-12-04 (afternoon); the shipped filter skips the scans for text with no
# digit, "@", "+" or "(" (`serving.safety.TRIGGER`).
SCANNED = "prose, every pattern scanned"


def run() -> dict:
    output_filter = OutputFilter()
    scanning = OutputFilter(patterns=list(PATTERNS))
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(ROUNDS):
        for length in LENGTHS:
            texts = _texts(length)
            for name, text in [*texts.items(), (SCANNED, texts["baseline: prose"])]:
                used = scanning if name == SCANNED else output_filter
                samples.setdefault((name, length), []).append(_stream_s(used, text))
    per_char = {key: statistics.median(values) / key[1] * 1e6
                for key, values in samples.items()}
    rows = []
    for (name, length), values in samples.items():
        rows.append({"text": name, "chars": length,
                     "median ms": round(statistics.median(values) * 1000, 2),
                     "min-max ms": f"{min(values) * 1000:.2f}-{max(values) * 1000:.2f}",
                     "us/char": round(per_char[name, length], 3),
                     "us/char vs 1,000": round(per_char[name, length]
                                               / per_char[name, LENGTHS[0]], 2),
                     "vs prose": round(per_char[name, length]
                                       / per_char["baseline: prose", length], 2)})
    print(table(rows, ["text", "chars", "median ms", "min-max ms", "us/char",
                       "us/char vs 1,000", "vs prose"]))
    path = write("filter", {"rounds": ROUNDS, "piece_chars": PIECE, "rows": rows,
                            "samples_s": {f"{n}@{length}": v
                                          for (n, length), v in samples.items()}})
    print(f"wrote {path}")
    hold = _hold_rows()
    print(table(hold, list(hold[0])))
    path = write("filter-hold", {"rows": hold, "piece_chars": HOLD_PIECE})
    print(f"wrote {path}")
    served = _served() if SERVED else None
    if served is not None:
        print(table(served["rows"], list(served["rows"][0])))
        path = write("filter-served", served)
        print(f"wrote {path}")
    return {"rows": rows, "served": served}


def _held(output_filter: OutputFilter, text: str, piece: int) -> tuple[list[int], int]:
    """Characters held back after each piece, and the pieces fed before the first text."""
    stream = output_filter.stream()
    held, sent, first = [], 0, None
    for number, start in enumerate(range(0, len(text), piece)):
        out = stream.feed(text[start:start + piece])
        sent += len(out)
        held.append(min(start + piece, len(text)) - sent)
        if out and first is None:
            first = number
    return held, len(held) if first is None else first


def _hold_rows() -> list[dict]:
    entries = read_file(SHIPPED)
    variants = {"shipped": OutputFilter(),
                "baseline: word-character local part":
                    OutputFilter(patterns=[WORD_LOCAL_PART, *PATTERNS[1:]])}
    rows = []
    for lang, piece in HOLD_PIECE.items():
        for name, output_filter in variants.items():
            held, firsts = [], []
            for entry in entries:
                text = entry.answers.get(lang)
                if text:
                    got, first = _held(output_filter, text, piece)
                    held += got
                    firsts.append(first)
            rows.append({"answers": lang, "filter": name, "answers fed": len(firsts),
                         "chars per piece": piece,
                         "held per piece, mean": round(statistics.mean(held), 2),
                         "held, max": max(held),
                         "pieces before first text, mean": round(statistics.mean(firsts), 2)})
    return rows


def _token_id(model: Path, token: str) -> int:
    return json.loads((model / "tokenizer.json").read_text())["model"]["vocab"][token]


def _forced_stream(client: httpx.Client, token_id: int) -> dict:
    # The grammar alone lets the model spell the word in pieces (2,957 characters in 2,048
    # tokens when tried); the bias makes it take the whole token each time, so 800 tokens
    # carry all 20,000 characters.
    body = {"model": "small", "stream": True, "temperature": 0,
            "max_tokens": FORCED_REPEATS + 16, "logit_bias": {str(token_id): 100},
            "messages": [{"role": "user", "content": "Say the word again and again."}],
            "structured_outputs": {"regex": f"({FORCED_TOKEN}){{{FORCED_REPEATS}}}"}}
    arrivals: list[float] = []
    text: list[str] = []
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            piece = choices[0].get("delta", {}).get("content")
            if piece:
                arrivals.append(time.perf_counter())
                text.append(piece)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    joined = "".join(text)
    return {"chars": len(joined), "intact": joined == FORCED_TOKEN * FORCED_REPEATS,
            "chunks": len(text), "total_s": round(arrivals[-1] - started, 2),
            "first_gap_ms": round(statistics.median(gaps[:EDGE]) * 1000, 2),
            "last_gap_ms": round(statistics.median(gaps[-EDGE:]) * 1000, 2)}


def _served() -> dict:
    runs = []
    with appliance() as (url, work, _), httpx.Client(base_url=url, timeout=900) as client:
        config = load_config(work / "config.toml")
        token_id = _token_id(model_dir(config, config.tiers["small"]), FORCED_TOKEN)
        for round_number in range(1, SERVED_ROUNDS + 1):
            run = _forced_stream(client, token_id)
            print(f"forced run {round_number}: {run}", flush=True)
            runs.append(run)
    rows = [{"round": i, "chars": r["chars"], "intact": r["intact"], "chunks": r["chunks"],
             "whole stream s": r["total_s"],
             f"median gap, first {EDGE} ms": r["first_gap_ms"],
             f"median gap, last {EDGE} ms": r["last_gap_ms"],
             "last vs first": round(r["last_gap_ms"] / r["first_gap_ms"], 2)}
            for i, r in enumerate(runs, start=1)]
    return {"rows": rows, "runs": runs}
