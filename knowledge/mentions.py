"""Mentions: the names (products, cities) that decide which entry a question is about.

"How much is the Halo floor lamp?" and "How much is the Iris floor lamp?" differ in one word,
which similarity scores barely see. So the names are matched exactly, and taken out of the
text before scoring: the name picks the subject, the rest of the text picks the fact.

A product's name after its brand is its kind ("floor lamp", "落地灯"): a follow-up that says
only "the floor lamp" means the floor lamp the conversation was about, and a kind that only
one product has names that product.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from knowledge.entries import Entry

_CJK = re.compile(r"[\u3400-\u9fff]")


class MentionIndex:
    def __init__(self, entries: Iterable[Entry]):
        entries = list(entries)
        names = sorted({m.strip() for e in entries for m in e.mentions if m.strip()},
                       key=len, reverse=True)
        self.names = names
        self._canonical = {n.lower(): n for n in names}
        self._pattern = _alternation(names)
        kinds: dict[str, set[str]] = {}
        for entry in entries:
            brand = (entry.product or "").split(" ", 1)[0]
            for name in entry.mentions:
                first, _, kind = name.strip().partition(" ")
                if brand and first == brand and kind.strip():
                    kinds.setdefault(kind.strip().lower(), set()).add(name.strip())
        self._kinds = kinds
        self._kind_pattern = _alternation(kinds)

    def find(self, text: str) -> list[str]:
        """The names in `text`, longest match first, as written in the knowledge base."""
        if self._pattern is None:
            return []
        return [self._canonical[m.group(0).lower()] for m in self._pattern.finditer(text)]

    def of_kind(self, text: str) -> set[str]:
        """The names of every product whose kind `text` says ("the floor lamp": both floor
        lamps), for a text that names no product itself."""
        if self._kind_pattern is None:
            return set()
        return {n for m in self._kind_pattern.finditer(text)
                for n in self._kinds[m.group(0).lower()]}

    def strip(self, text: str, *, kinds: bool = False) -> str:
        """Names (and kinds, when they named the subject) replaced by one placeholder:
        "the X" is what is left to score."""
        for pattern in (self._pattern, self._kind_pattern if kinds else None):
            text = pattern.sub(" X ", text) if pattern is not None else text
        return text


def _alternation(names: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for the names, longest first; Latin names only as whole words."""
    ordered = sorted(names, key=len, reverse=True)
    parts = [re.escape(n) if _CJK.search(n) else rf"(?<![\w]){re.escape(n)}(?![\w])"
             for n in ordered]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None

