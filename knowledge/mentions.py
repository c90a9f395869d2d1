"""Mentions: the names (products, cities) that decide which entry a question is about.

"How much is the Halo floor lamp?" and "How much is the Iris floor lamp?" differ in one word,
which similarity scores barely see. So the names are matched exactly, and taken out of the
text before scoring: the name picks the subject, the rest of the text picks the fact.

A product's name after its brand is its kind ("floor lamp", "落地灯"): a follow-up that says
only "the floor lamp" means the floor lamp the conversation was about, and a kind that only
one product has names that product. Not after a name the knowledge base does not hold: "the
Zenith pendant light" and "星辰吊灯" are other products (they were given the Echo pendant
light's price until 2026-12-05).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import dropwhile, pairwise

from knowledge.entries import Entry
from knowledge.places import gazetteer, places

_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z0-9]")


# Kinds customers use for one another: an "Ember 台灯" is the Ember table lamp (桌灯).
ALIKE_KINDS = (frozenset({"desklamp", "tablelamp", "台灯", "桌灯"}),)


class MentionIndex:
    def __init__(self, entries: Iterable[Entry]):
        entries = list(entries)
        names = sorted({m.strip() for e in entries for m in e.mentions if m.strip()},
                       key=len, reverse=True)
        self.names = names
        self._canonical = {_key(n): n for n in names}
        self._pattern = _alternation(names)
        kinds: dict[str, set[str]] = {}
        written: set[str] = set()
        self._brand_kinds: dict[str, set[str]] = {}  # a brand said alone: its products' kinds
        self._brand_words: dict[str, set[str]] = {}
        for entry in entries:
            brand = (entry.product or "").split(" ", 1)[0]
            for name in entry.mentions:
                first, _, kind = name.strip().partition(" ")
                if brand and first == brand and kind.strip():
                    kinds.setdefault(_key(kind), set()).add(name.strip())
                    written.add(kind.strip())
                    self._brand_kinds.setdefault(_key(brand), set()).add(_key(kind))
                    # The words its kinds are made of ("ceiling", "bulb"; a Chinese kind's
                    # first character).
                    self._brand_words.setdefault(_key(brand), set()).update(_kind_words(kind))
        self._kinds = kinds
        self._kind_pattern = _alternation(written)
        self._kind_words = set().union(*self._brand_words.values())

    def find(self, text: str) -> list[str]:
        """The names in `text`, longest match first, as written in the knowledge base."""
        if self._pattern is None:
            return []
        return [self._canonical[_key(m.group(0))] for m in self._pattern.finditer(text)
                if not self._other_kind_after(text, m)]

    def _other_kind_after(self, text: str, match: re.Match[str]) -> bool:
        """A brand said alone, followed by a kind none of its products is: "the Aurora
        floor lamp" is no Aurora the shop sells (the Aurora is a desk lamp), and was given
        the Aurora desk lamp's price until 2026-12-05."""
        own = self._brand_kinds.get(_key(match.group(0)))
        if own is None or self._kind_pattern is None:
            return False
        rest = text[match.end():]
        kind = self._kind_pattern.match(text, match.end() + len(rest) - len(rest.lstrip()))
        if kind is None:
            # Not a kind the shop sells, but made of one's words: "the Aurora ceiling fan",
            # "Aurora 吊扇" (the Aurora ceiling fan got the desk lamp's price until 2026-12-05).
            word = _NEXT_WORD.match(rest)
            said = word.group(1).lower() if word is not None else ""
            return (said in self._kind_words and said not in GENERIC_KIND_WORDS
                    and said not in self._brand_words[_key(match.group(0))])
        said = _key(kind.group(0))
        return not any(said in group and own & group for group in ALIKE_KINDS) and (
            said not in own)

    def of_kind(self, text: str) -> set[str]:
        """The names of every product whose kind `text` says ("the floor lamp": both floor
        lamps), for a text that names no product itself."""
        if self._kind_pattern is None:
            return set()
        return {n for m in self._kind_pattern.finditer(text)
                if not _named_before(text, m.start())
                for n in self._kinds[_key(m.group(0))]}

    def strip(self, text: str, *, kinds: bool = False) -> str:
        """Names (and kinds, when they named the subject) replaced by one placeholder:
        "the X" is what is left to score."""
        for pattern in (self._pattern, self._kind_pattern if kinds else None):
            text = pattern.sub(" X ", text) if pattern is not None else text
        return text


# What a product of any kind may be called after its brand: "the Aurora lamp".
GENERIC_KIND_WORDS = frozenset(("lamp", "lamps", "light", "lights", "灯"))
_NEXT_WORD = re.compile(r"\s*([A-Za-z]+|[\u3400-\u9fff])")


def _kind_words(kind: str) -> set[str]:
    """"desk lamp": desk, lamp; "落地灯": 落 (a Chinese kind by its first character)."""
    words = {w.lower() for w in _WORD.findall(kind)}
    han = _CJK.search(kind)
    return words | ({han.group(0)} if han else set())


def _key(name: str) -> str:
    """A name as matched ("halo落地灯") and as written ("Halo 落地灯") have one key."""
    return "".join(name.lower().split())


def _alternation(names: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for the names, longest first. A Latin word of a name matches only whole
    (not "Halo" in "Halogen"), but Chinese around it is a boundary, and the space between
    a Latin and a Chinese word may be left out: customers write "Halo落地灯" and "买Halo"."""
    ordered = sorted(names, key=len, reverse=True)
    parts = [_name_pattern(n) for n in ordered]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def _name_pattern(name: str) -> str:
    words = name.split()
    pattern = re.escape(words[0])
    for before, word in pairwise(words):
        mixed = bool(_CJK.search(before[-1])) != bool(_CJK.search(word[0]))
        pattern += (r"\s*" if mixed else r"\s+") + re.escape(word)
    if _LATIN.match(name[0]):
        pattern = rf"(?<![A-Za-z0-9]){pattern}"
    if _LATIN.match(name[-1]):
        pattern = rf"{pattern}(?![A-Za-z0-9])"
    return pattern


# What may stand right before a kind that means a product of the shop ("the floor lamp",
# "your LED strip", "a white night light", "那个落地灯", "你们的吊灯", "买台灯"); any other word
# there is a name, of a product the knowledge base does not hold.
_PLAIN_WORDS = (
    "a an the this that these those my your our its their his her one any each every another "
    "other which what whose and or of for about on in with to from by is are does do did it "
    "new old same first second big small large little cheap cheaper nice white black brass "
    "green sage terracotta red blue grey gray pink gold silver")
PLAIN_BEFORE_KIND = frozenset(_PLAIN_WORDS.split())
PLAIN_BEFORE_KIND_ZH = frozenset(
    "的个款盏只台套这那该们买有和与跟及或问下要把给看是呢吗还再也就请您你我它")
_LAST_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*$")


def _named_before(text: str, start: int) -> bool:
    """Whether the kind at `start` follows a name ("Zenith pendant light", "星辰吊灯",
    "Zenith吊灯"), not a word of plain speech."""
    before = text[:start].rstrip()
    if not before:
        return False
    if _CJK.match(before[-1]):
        return before[-1] not in PLAIN_BEFORE_KIND_ZH
    word = _LAST_LATIN_WORD.search(before)
    return word is not None and word.group(0).lower() not in PLAIN_BEFORE_KIND


_CAPITALISED = re.compile(r"\b[A-Z][A-Za-z]+\b")
_WORD = re.compile(r"[A-Za-z]+")


def proper_names(entries: list[Entry]) -> dict[str, int]:
    """Words an entry's answer names that nothing else in the knowledge base says: written
    capitalised wherever they are written, not only first in a sentence ("Mastercard",
    "Alipay"; not "Pay" of "WeChat Pay", which questions write "pay"), in the answers of one
    entry about no named subject. A question that names one asks about that entry, however
    far its other words are from it ("Is Mastercard accepted?" to "We accept Visa,
    Mastercard, ..."). Lower case; by the entry's index."""
    capitalised: dict[str, set[int]] = {}
    lower: set[str] = set()
    written: dict[str, set[int]] = {}
    for index, entry in enumerate(entries):
        for text in entry.texts():
            for word in _WORD.findall(text):
                written.setdefault(word.lower(), set()).add(index)
                if word[0].islower():
                    lower.add(word.lower())
        if entry.mentions:
            continue
        for lang in entry.languages:
            answer = entry.answer(lang)
            for match in _CAPITALISED.finditer(answer):
                if answer[:match.start()].rstrip()[-1:] not in ("", ".", "!", "?", ":"):
                    capitalised.setdefault(match.group().lower(), set()).add(index)
    return {word: next(iter(owners)) for word, owners in capitalised.items()
            if word not in lower and written[word] == owners and len(owners) == 1}


# Capitalised words that name no thing a shop sells, ships to or takes: days, months and
# feasts ("on Sunday", "at Christmas"), titles.
_NO_THING_WORDS = (
    "monday tuesday wednesday thursday friday saturday sunday mondays tuesdays wednesdays "
    "thursdays fridays saturdays sundays january february march april may june july august "
    "september october november december christmas easter new year years day eve black "
    "cyber thanksgiving valentine valentines halloween chinese english mr mrs ms dr")
_NO_THING = frozenset(_NO_THING_WORDS.split())
# The words before a name that make it a place, brand or service the question asks about:
# prepositions, and the verbs of what a shop takes ("Does your checkout take Google Pay?").
# Not any word: "Hi, I'm Sarah, where is your store?" names a customer.
_PREPOSITIONS = ("in to with from at by via on into through using near take takes accept "
                 "accepts support supports")
_PLACE_WORDS = frozenset(_PREPOSITIONS.split())
DESTINATION_WORDS = frozenset(("to", "into"))
_CAPITALISED_RUN = re.compile(r"(?:\b[A-Z][a-z][A-Za-z]*\b[ \t]*)+")


@dataclass(frozen=True)
class Strangers:
    """What a question names that no entry writes: `names` (after a preposition, a place, a
    way of paying: "a store in Paris", "苏州有门店吗", "pay by bank transfer") and, of them,
    the `destinations` a parcel goes to ("deliver to Vancouver", "寄到哈尔滨")."""

    names: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()


# What a payment is made with: "pay using a bank transfer", "pay for it in instalments",
# "用花呗付款". The shop's payment entry lists what it takes; any other way is one it does
# not state, however near "pay" puts the question to that entry.
_PAID_WITH = re.compile(
    r"\bpay(?:ing)?\b(?:\s+for\s+(?:[\w']+\s+){0,3}?)?\s*(?:with|by|using|via|in|through)\s+"
    r"(?P<means>[a-z][a-z -]*?)\s*(?=[?.!,;]|\b(?:or|and|instead|please|if|when)\b|$)",
    re.IGNORECASE)
# "用" that is a word of its own, not the end of one ("信用卡", "使用", "费用").
_PAID_WITH_ZH = re.compile(
    r"(?<![信使费作利应采通适运实专试家商日备租占调启停共借选饮食享动挪录任雇服惯常套引])用"
    r"(?P<means>[\u4e00-\u9fffA-Za-z]{2,10}?)(?:来)?(?:付款|支付|付钱|结账|买单|付|吗|呢|？|\?)")
# "可以分期付款吗？", "支持货到付款吗？": the way of paying said right before 付款.
_PAID_AS_ZH = re.compile(
    r"(?:可以|能|能否|可否|是否|支持|接受|允许)(?P<means>[\u4e00-\u9fff]{2})(?:付款|支付)")
_ASKING_ZH = re.compile("[哪啥何几]|什么")  # "用哪些方式付钱": the means asked, not said
_NOT_MEANS_WORDS = ("a an the my your our his her their its this that some one two three "
                    "four five six twelve full part monthly")
_NOT_MEANS = frozenset(_NOT_MEANS_WORDS.split())
# A parcel's way to a place in Chinese: "寄到", "送到", "发往", "到".
_TOWARDS_ZH = ("到", "往", "至")
_DIVISIONS = "市省区县"  # "上海市" is Shanghai


class StrangerNames:
    """Proper names a question says after a preposition (or "take", "accept", "support")
    that no entry writes anywhere: "a store in Paris", "pay with Bitcoin", "deliver to
    Vancouver", "take Google Pay"; Chinese places (`knowledge.places`) no entry writes
    ("你们在苏州有门店吗？"); and what a payment is made with, when no entry writes it ("pay
    using a bank transfer", "用京东白条付款"). The
    question is about a place, brand or service the knowledge base does not hold, however
    near in meaning an entry about no name is ("Do you deliver to Vancouver, and how fast?"
    got the express shipping entry as a kb answer). Capitalised words first in a sentence,
    in all capitals ("ETA") or of days and feasts are not judged."""

    def __init__(self, entries: Iterable[Entry]):
        texts = [text for e in entries
                 for text in (*e.texts(), *e.mentions,
                              *(w for ws in e.keywords.values() for w in ws))]
        self.vocabulary = {w.lower() for text in texts for w in _WORD.findall(text)}
        self.written_zh = "\n".join(t for t in texts if _CJK.search(t))
        gazetteer()  # read once per process, at the start, not in the first Chinese question

    def find(self, text: str) -> Strangers:
        names, destinations = [], []
        for run in _CAPITALISED_RUN.finditer(text):
            before = _WORD.findall(text[:run.start()])
            if not before or before[-1].lower() not in _PLACE_WORDS:
                continue
            words = run.group(0).split()
            if any(w.lower() not in self.vocabulary and w.lower() not in _NO_THING
                   for w in words):
                names.append(" ".join(words))
                if before[-1].lower() in DESTINATION_WORDS:
                    destinations.append(names[-1])
        for match in _PAID_WITH.finditer(text):
            words = [w.lower() for w in _WORD.findall(match.group("means"))]
            if any(w not in self.vocabulary and w not in _NOT_MEANS for w in words):
                names.append(" ".join(dropwhile(_NOT_MEANS.__contains__, words)))
        for match in (*_PAID_WITH_ZH.finditer(text), *_PAID_AS_ZH.finditer(text)):
            if not self._writes(match.group("means")) and not _ASKING_ZH.search(
                    match.group("means")):
                names.append(match.group("means"))
        for place, start in places(text):
            if not self._writes(place) and not self._writes(place.rstrip(_DIVISIONS)):
                names.append(place)
                if text[:start].endswith(_TOWARDS_ZH):
                    destinations.append(place)
        once: dict[str, str] = {}  # "pay with Bitcoin" is a name and a means
        for name in names:
            once.setdefault(name.lower(), name)
        return Strangers(tuple(once.values()), tuple(destinations))

    def _writes(self, word: str) -> bool:
        """Whether an entry writes `word` (with Latin in it: each Latin word, and at most
        one Chinese character beside them)."""
        latin = _WORD.findall(word)
        han = "".join(_CJK.findall(word))
        if latin and not all(w.lower() in self.vocabulary for w in latin):
            return False
        # "Visa卡": a known name and a character; "PayPal分三期": a known name and more.
        return len(han) < 2 if latin else han in self.written_zh and len(han) > 1
