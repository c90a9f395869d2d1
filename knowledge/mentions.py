"""Mentions: the names (products, cities) that decide which entry a question is about.

"How much is the Halo floor lamp?" and "How much is the Iris floor lamp?" differ in one word,
which similarity scores barely see. So the names are matched exactly, and taken out of the
text before scoring: the name picks the subject, the rest of the text picks the fact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from knowledge.entries import Entry

_CJK = re.compile(r"[\u3400-\u9fff]")


class MentionIndex:
    def __init__(self, entries: Iterable[Entry]):
        names = sorted({m.strip() for e in entries for m in e.mentions if m.strip()},
                       key=len, reverse=True)
        self.names = names
        self._canonical = {n.lower(): n for n in names}
        parts = [re.escape(n) if _CJK.search(n) else rf"(?<![\w]){re.escape(n)}(?![\w])"
                 for n in names]
        self._pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def find(self, text: str) -> list[str]:
        """The names in `text`, longest match first, as written in the knowledge base."""
        if self._pattern is None:
            return []
        return [self._canonical[m.group(0).lower()] for m in self._pattern.finditer(text)]

    def strip(self, text: str) -> str:
        return self._pattern.sub(" X ", text) if self._pattern is not None else text

