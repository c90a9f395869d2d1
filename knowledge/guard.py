"""The fact guard: every number, price, phone number, e-mail address and duration a grounded
answer states must appear in the entries it was grounded on or in the question, and every
value word (a colour, a city, another product's name: see `value_words`) in those entries.
An answer that states any other is not sent."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from knowledge.tokens import tokens

_HAN = re.compile(r"[\u3400-\u9fff]")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Digits with inner separators: 400-820-1234, 9.90, 1,299, 24/7, 88.
_NUMBER = re.compile(r"\d+(?:[.,/:-]\d+)*")


def _normal(number: str) -> str:
    if re.fullmatch(r"\d+[.,]\d+", number):
        whole, _, fraction = number.replace(",", ".").partition(".")
        fraction = fraction.rstrip("0")
        return f"{int(whole)}.{fraction}" if fraction else str(int(whole))
    if number.isdigit():
        return number.lstrip("0") or "0"
    return number


def facts(text: str) -> set[str]:
    """The checkable facts of a text: e-mail addresses and numbers, normalised (129.00 is
    129; 9.90 is 9.9)."""
    emails = {e.lower().rstrip(".") for e in _EMAIL.findall(text)}
    rest = _EMAIL.sub(" ", text)
    return emails | {_normal(n) for n in _NUMBER.findall(rest)}


def known_facts(sources: Iterable[str]) -> set[str]:
    """The sources' facts; a phone number's parts and a range's ends count as stated too."""
    known: set[str] = set()
    for source in sources:
        found = facts(source)
        known |= found | {part for fact in found for part in re.split(r"[-/:]", fact)}
    return known


@dataclass(frozen=True)
class Verdict:
    passed: bool
    unsupported: tuple[str, ...]


def check(answer: str, sources: Iterable[str]) -> Verdict:
    known = known_facts(sources)
    unsupported = tuple(sorted(f for f in facts(answer) if f not in known))
    return Verdict(not unsupported, unsupported)


def value_words(answers: Sequence[str]) -> frozenset[str]:
    """The words that tell one subject's facts from another's ("brass", "Berlin", "shade"):
    found in at most a tenth of the answers about named subjects, so not their common
    wording ("costs", "comes", "warranty"). Chinese by its bigrams ("黑色"; a single
    character is too common a word part), English words of three letters or more."""
    counts = Counter(w for a in answers for w in set(tokens(a))
                     if not w[0].isdigit() and len(w) >= (2 if _HAN.match(w) else 3))
    limit = max(1, len(answers) // 10)
    return frozenset(w for w, n in counts.items() if n <= limit)


def unsupported_values(answer: str, sources: Iterable[str], values: frozenset[str]
                       ) -> set[str]:
    """Value words the answer states that no source does. The question is no source here:
    "Is the Nova available in black?" answered "The Nova is available in black." states a
    colour the Nova does not come in."""
    stated = set(tokens(answer)) & values
    if not stated:
        return set()
    return stated - {w for source in sources for w in tokens(source)}


# A list's item number at a line's start ("1. Unplug the lamp"): a count, not a fact.
_ITEM = re.compile(r"\n[ \t]*(\d{1,2})[.)、](?!\d)")
# A number at the very end of a piece may still grow ("9" of "9.90", "400-" of a phone).
_GROWING = re.compile(r"\d+(?:[.,/:-]\d+)*[.,/:-]?$")
# Longer than any fact a shop states: what a stream may hold back stays bounded, and so does
# the work per piece (a model writing digits for hundreds of tokens is stopped there).
LONGEST_NUMBER = 64


class StreamFactGuard:
    """The fact guard for an answer that streams (the tiers' `open` answers): each number is
    checked against the sources as soon as it is whole; text goes out at once except a
    number that may still grow. The first number no source states stops the answer before
    it (`stopped`); the caller ends the text there."""

    def __init__(self, known: Collection[str]):
        self.known = known  # `known_facts` of the sources
        self.stopped = False
        self._held = ""
        self._line_start = True  # whether what went out last ended a line (or nothing has)

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        text = self._held + piece
        growing = _GROWING.search(text)
        cut = growing.start() if growing else len(text)
        self._held = text[cut:]
        released = self._release(text[:cut])
        if len(self._held) > LONGEST_NUMBER and not self.stopped:
            self.stopped, self._held = True, ""
        return released

    def flush(self) -> str:
        text, self._held = self._held, ""
        return "" if self.stopped else self._release(text)

    def _release(self, text: str) -> str:
        if not text:
            return ""
        lead = "\n" if self._line_start else " "  # an item number first in `text` too
        items = {m.start(1) - 1 for m in _ITEM.finditer(lead + text)}
        for match in _NUMBER.finditer(_EMAIL.sub(lambda m: " " * len(m.group()), text)):
            number = match.group()
            if match.start() in items:
                continue
            if _normal(number) not in self.known and number not in self.known:
                self.stopped = True
                return text[:match.start()]
        self._line_start = text.endswith("\n")
        return text
