"""Entries' keywords judge questions about no named product or city: none said by a near
entry is abstained; one said below the relevance bar is offered."""

from __future__ import annotations

import pytest

from knowledge.entries import Entry
from knowledge.keywords import words_pattern
from knowledge.modes import Thresholds, choose
from knowledge.retrieval import Hit


def test_keywords_match_word_starts_in_latin_script_and_anywhere_in_chinese() -> None:
    pattern = words_pattern(["refund", "money back", "退款", " "])
    assert pattern is not None
    for text in ("when are refunds paid", "i want my money back", "能刷Visa卡吗，退款呢"):
        assert pattern.search(text.lower()), text
    for text in ("prefunded orders", "back money", "退货"):
        assert not pattern.search(text.lower()), text
    assert words_pattern([" ", ""]) is None


def _policy(entry_id: str, dense: float, said: bool | None, score: float = 0.55) -> Hit:
    entry = Entry.model_validate({"id": entry_id, "questions": {"en": [f"{entry_id}?"]},
                                  "answers": {"en": f"The {entry_id}."}})
    return Hit(entry, score, dense, 0.1, f"{entry_id}?", said=said)


def test_below_the_bar_the_one_entry_whose_keywords_are_said_is_offered() -> None:
    """"phone number pls": 0.861 from the phone entry, under the 0.88 bar (abstained)."""
    hits = [_policy("hours", 0.870, False), _policy("phone", 0.861, True),
            _policy("store", 0.850, False)]
    chosen = choose(hits, None, Thresholds())
    assert chosen.mode == "suggest" and [h.entry.id for h in chosen.entries] == ["phone"]
    assert "phone's keywords" in chosen.reason
    off = choose(hits, None, Thresholds(suggest=False))
    assert off.mode == "grounded" and [h.entry.id for h in off.entries] == ["phone"]
    # Too far in meaning, two said (no telling which), no keywords at all, or small talk.
    assert choose(hits, None, Thresholds(keyword_similarity=0.865)).mode == "abstain"
    two = [*hits[:2], _policy("store", 0.850, True)]
    assert choose(two, None, Thresholds(keyword_similarity=0.84)).mode == "abstain"
    bare = [_policy(h.entry.id, h.dense, None) for h in hits]
    assert choose(bare, None, Thresholds()).mode == "abstain"
    # Small talk stays small talk unless it is a question saying the entry's keywords
    # ("Is there a helpline?", read as chitchat by the router's n-gram classifier).
    assert choose(hits, "chitchat", Thresholds(), question=False).mode == "open"
    assert choose(hits, "chitchat", Thresholds()).mode == "suggest"
    assert choose(two, "chitchat", Thresholds(keyword_similarity=0.84)).mode == "open"


def test_relevant_entries_whose_keywords_are_not_said_are_not_what_is_asked() -> None:
    """"Do you offer a military discount?": 0.896 from the free-shipping entry (offered)."""
    hits = [_policy("free-shipping", 0.896, False, 0.58), _policy("express", 0.889, False, 0.57)]
    chosen = choose(hits, None, Thresholds())
    assert chosen.mode == "abstain" and "none of the entries' keywords" in chosen.reason
    # One of them said: offered as before; entries without keywords: as before.
    said = [hits[0], _policy("express", 0.889, True, 0.57)]
    assert choose(said, None, Thresholds()).mode == "suggest"
    bare = [_policy(h.entry.id, h.dense, None, h.score) for h in hits]
    assert choose(bare, None, Thresholds()).mode == "suggest"
    # An entry below the offered ones that the question does say is offered instead.
    lower = [*hits, _policy("cancel", 0.884, False, 0.56), _policy("phone", 0.850, True, 0.50)]
    chosen = choose(lower, None, Thresholds())
    assert chosen.mode == "suggest" and [h.entry.id for h in chosen.entries] == ["phone"]
    # A sure complaint still reaches the large tier, grounded.
    assert choose(hits, "complaint", Thresholds()).mode == "grounded"


@pytest.fixture(scope="module")
def retriever():
    from knowledge.embedder import E5Small
    from knowledge.entries import KnowledgeBase
    from knowledge.files import read_file
    from knowledge.lumen import SHIPPED
    from knowledge.retrieval import EmbeddingCache, Retriever

    return Retriever(KnowledgeBase.of(1, read_file(SHIPPED)), EmbeddingCache(E5Small()))


@pytest.mark.parametrize(("question", "mode", "entry"), [
    ("What phone line do I use to reach a person?", "suggest", "support-phone"),
    ("Is there a discount for nurses?", "abstain", None),
    ("Do you offer a military discount?", "abstain", None),
    ("你们有会员积分吗？", "abstain", None),
    ("Which ways to pay work at your checkout?", "suggest", "payment"),
    ("How much does the Halo floor lamp cost?", "kb", "halo-floor-lamp-price"),
    # A name no entry writes: what an entry naming another does not say, or a parcel's way
    # to a place it never writes; an entry that names nothing holds wherever one lives.
    ("Can I pay with Venmo?", "abstain", None),
    ("Is there a showroom in Oslo?", "abstain", None),
    ("Can you ship a lamp to Lagos quickly?", "abstain", None),
    # Nor offered the entry whose keywords it says, when that entry names other means.
    ("可以用翼支付吗？", "abstain", None),
    ("Is paying in cash at the door possible?", "abstain", None),
    ("你们在武汉有门店吗？", "abstain", None),
    ("I'm in Leeds and my lamp is broken, how do I claim the warranty?", "kb",
     "warranty-claim"),
])
def test_the_shipped_policies_keywords_decide_near_questions(
        retriever, question: str, mode: str, entry: str | None) -> None:
    strangers = retriever.strangers.find(question)
    chosen = choose(retriever.search(question), None, Thresholds(),
                    asked=retriever.asked(question),
                    strangers=strangers.names, destinations=strangers.destinations)
    assert chosen.mode == mode, chosen.reason
    if entry is not None:
        assert chosen.best is not None and chosen.best.entry.id == entry
