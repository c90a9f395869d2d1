"""Sensitive-word matching with an Aho-Corasick automaton: one pass over the text
whatever the number of terms. Each list has an action: block, mask or flag.

Latin-script terms match on word boundaries (so "class" never hits "ass"); CJK terms
match anywhere, as Chinese has no spaces between words.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Action = Literal["block", "mask", "flag"]
ACTION_ORDER = {"block": 0, "mask": 1, "flag": 2}


@dataclass(frozen=True)
class Hit:
    start: int
    end: int
    term: str
    list_name: str
    action: Action


def read_terms(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [t.strip().lower() for t in lines if t.strip() and not t.lstrip().startswith("#")]


def is_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


class SensitiveMatcher:
    def __init__(self, lists: dict[str, tuple[Action, list[str]]]):
        self._goto: list[dict[str, int]] = [{}]
        self._fail: list[int] = [0]
        self._out: list[list[tuple[str, str, Action]]] = [[]]
        for name, (action, terms) in lists.items():
            for term in terms:
                self._add(term, name, action)
        self._link()

    def terms(self, actions: tuple[str, ...]) -> list[str]:
        return [term for out in self._out for term, _, action in out if action in actions]

    def _add(self, term: str, name: str, action: Action) -> None:
        node = 0
        for ch in term:
            nxt = self._goto[node].get(ch)
            if nxt is None:
                nxt = len(self._goto)
                self._goto[node][ch] = nxt
                self._goto.append({})
                self._fail.append(0)
                self._out.append([])
            node = nxt
        self._out[node].append((term, name, action))

    def _link(self) -> None:
        queue = deque(self._goto[0].values())
        while queue:
            node = queue.popleft()
            for ch, nxt in self._goto[node].items():
                queue.append(nxt)
                fail = self._fail[node]
                while fail and ch not in self._goto[fail]:
                    fail = self._fail[fail]
                target = self._goto[fail].get(ch, 0)
                self._fail[nxt] = target if target != nxt else 0
                self._out[nxt] = self._out[nxt] + self._out[self._fail[nxt]]

    def find(self, text: str) -> list[Hit]:
        lowered = text.lower()
        hits, node = [], 0
        for i, ch in enumerate(lowered):
            while node and ch not in self._goto[node]:
                node = self._fail[node]
            node = self._goto[node].get(ch, 0)
            for term, name, action in self._out[node]:
                start = i - len(term) + 1
                if term[0].isascii() and term[-1].isascii() and (
                        (start > 0 and is_word_char(lowered[start - 1]))
                        or (i + 1 < len(lowered) and is_word_char(lowered[i + 1]))):
                    continue
                hits.append(Hit(start, i + 1, term, name, action))
        return hits


def strongest(hits: list[Hit]) -> Action | None:
    return min((h.action for h in hits), key=ACTION_ORDER.__getitem__, default=None)


def mask(text: str, hits: list[Hit]) -> str:
    chars = list(text)
    for hit in hits:
        if hit.action == "mask":
            chars[hit.start:hit.end] = ["*"] * (hit.end - hit.start)
    return "".join(chars)
