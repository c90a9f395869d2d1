"""What a question about a named product or city asks for: the kind of fact (an entry's
tag: price, colors, power, warranty, delivery), by the words customers use for it.

The embedder scores a question by its shape more than by the one word that says what is
asked: with the name taken out, "Is the X dimmable?" is as near to "What is the price of
the X?" (0.904) as "Which finishes can I get the X in?" is to "What colors can I choose for
the X?" (0.909), so no similarity bar tells a product's unknown property from a known one
(2026-12-05, over the seven evaluation sets). A customer asking for a price says a word of
price ("cost", "how much", "set me back", "钱", "价"); one asking whether a lamp dims says
none of any fact the knowledge base holds about it. Words are matched as word starts in
English ("pric" is price, prices, pricey) and as substrings in Chinese.

Only tags listed here are judged: a knowledge base whose entries carry other tags is
never judged by these words (`judged` is false for it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from knowledge.keywords import words_pattern

# tag: (English word starts and phrases, Chinese substrings)
WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "price": (("pric", "cost", "euro", "€", "$", "cheap", "expensive", "afford", "charg",
               "how much", "set me back", "go for", "going for", "worth", "pay", "retail"),
              ("钱", "价", "欧元", "贵", "便宜", "块", "卖")),
    "colors": (("colo", "finish", "white", "black", "green", "brass", "terracotta", "sage",
                "red", "blue", "grey", "gray", "pink", "yellow", "gold", "silver", "beige",
                "brown", "orange", "purple", "chrome", "copper"),
               ("色", "黄铜")),
    "power": (("watt", "power", "energy", "electric", "consum", "draw", "bright", "kwh",
               "volt"),
              ("瓦", "功率", "耗电", "电", "亮")),
    "warranty": (("warrant", "guarant", "cover", "break", "broke", "fail", "defect",
                  "repair"),
                 ("保", "坏")),
    "delivery": (("deliver", "ship", "arriv", "parcel", "packag", "day", "wait", "reach",
                  "send", "sent", "post", "courier", "get here", "get there", "get to",
                  "how long", "how soon", "how quickly", "how fast", "when will",
                  "when would", "when does", "when do"),
                 ("寄", "送", "发货", "发到", "到货", "收货", "天", "多久", "快递", "物流",
                  "运")),
}


def judged(tags: Iterable[str]) -> bool:
    """Whether every one of these tags has words here (so a question saying none of them
    asks for something else)."""
    tags = list(tags)
    return bool(tags) and all(tag in WORDS for tag in tags)


def asked(text: str) -> frozenset[str]:
    """The tags whose words `text` says (`text` with its names taken out: "the Drift lamp
    shade" says no colour)."""
    lower = text.lower()
    found = {tag for tag, pattern in _PATTERNS.items()
             if pattern.search(_NOT_OF.get(tag, _NOTHING).sub(" ", lower))}
    # "How much power": an amount of another kind of fact, no price, unless the price is
    # asked in other words too ("how much power, and what does it cost?").
    others = found - {"price"}
    if "price" in found and others:
        amounts = _HOW_MUCH.findall(lower)
        if amounts and all(any(_START[t].match(w) for t in others) for w in amounts) and (
                not _PATTERNS["price"].search(_HOW_MUCH.sub(" ", lower))):
            found.discard("price")
    return frozenset(found)


def _alternation(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# English words and phrases where a word starts ("pric": price, pricey); Chinese anywhere.
_PATTERNS = {tag: words_pattern((*english, *chinese)) for tag, (english, chinese) in WORDS.items()}
_START = {tag: re.compile(_alternation(english)) for tag, (english, _) in WORDS.items()}
# Phrases that hold a kind's word and ask for something else: a colour temperature (warm or
# cool white light) is no colour a lamp comes in, and what a lamp runs on (batteries, USB,
# the sun) is not the wattage it draws ("Is the Harbor desk lamp USB powered?" got it).
_NOT_OF = {"colors": re.compile(r"colou?r temperature|色温"),
           "power": re.compile(
               r"\b(?:batter(?:y|ies)|usb|solar|mains|plug|cordless|rechargeable|wireless)"
               r"[- ]?(?:powered|power|operated|run)\b|\bpowered by\b|电池|充电|插电|太阳能|"
               r"usb供电|usb")}
_NOTHING = re.compile(r"(?!)")
_HOW_MUCH = re.compile(r"how much (\w+)")
