"""The fact guard: every number, price, phone number, e-mail address and duration a grounded
answer states must appear in the entries it was grounded on or in the question. An answer that
states any other is not sent."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Verdict:
    passed: bool
    unsupported: tuple[str, ...]


def check(answer: str, sources: Iterable[str]) -> Verdict:
    known: set[str] = set()
    for source in sources:
        known |= facts(source)
        # A phone number's parts and a range's ends count as stated too.
        known |= {part for fact in facts(source) for part in re.split(r"[-/:]", fact)}
    unsupported = tuple(sorted(f for f in facts(answer) if f not in known))
    return Verdict(not unsupported, unsupported)
