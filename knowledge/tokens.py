"""Lexical tokens for BM25: English words (lowercased, plural 's' dropped, stop words out) and
Chinese character unigrams and bigrams (Chinese has no spaces; bigrams carry most words)."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[a-z0-9]+(?:[.,'-][a-z0-9]+)*")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
STOP_EN = frozenset((
    "a", "an", "the", "is", "are", "am", "was", "be", "do", "does", "did", "i", "me", "my", "we",
    "our", "you", "your", "it", "its", "this", "that", "of", "to", "for", "in", "on", "at", "by",
    "with", "and", "or", "can", "could", "would", "will", "should", "please", "hi", "hello",
    "what", "which", "how", "when", "where", "who", "there", "any", "some", "get"))
STOP_ZH = frozenset("的了吗呢吧啊是我你们有在这那个么")


def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def tokens(text: str) -> list[str]:
    out: list[str] = []
    for run in _TOKEN.findall(text.lower()):
        if _CJK.match(run):
            out += [c for c in run if c not in STOP_ZH]
            out += [run[i:i + 2] for i in range(len(run) - 1)]
        elif run not in STOP_EN:
            out.append(_stem(run))
    return out
