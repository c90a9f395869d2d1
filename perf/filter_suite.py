"""The streaming output filter's cost per character as an answer grows, in-process.

The filter used to hold back an unbroken letter/digit run whole and scan it again on every
piece: quadratic (a review measured 1.6 s for 1,000 characters, 12 s for 2,000). It must be
linear: the time per character of a 20,000-character run about that of a 1,000-character
one. Each length is fed in 3-character pieces (about a token), as a forced structured
output would stream it. Baseline in the same run: ordinary prose of the same length,
words and spaces, which was never held back long. Rounds alternate the variants.
"""

from __future__ import annotations

import statistics
import time

from perf.report import table, write
from serving.safety import OutputFilter

LENGTHS = (1_000, 2_000, 5_000, 10_000, 20_000)
ROUNDS = 5
PIECE = 3
PROSE = "the lamp ships in two days and the shade is linen "


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


def run() -> dict:
    output_filter = OutputFilter()
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(ROUNDS):
        for length in LENGTHS:
            for name, text in _texts(length).items():
                samples.setdefault((name, length), []).append(_stream_s(output_filter, text))
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
    return {"rows": rows}
