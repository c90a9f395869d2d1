"""A question naming a product or city is judged by the words of what it asks for."""

from __future__ import annotations

import pytest

from knowledge.aspects import asked, judged
from knowledge.entries import Entry
from knowledge.modes import Thresholds, choose
from knowledge.retrieval import Hit


@pytest.mark.parametrize(("text", "tags"), [
    ("What would the X set me back?", {"price"}),
    ("how pricey is the X", {"price"}),
    ("What does the X retail for?", {"price"}),
    ("X 卖多少？", {"price"}),
    ("Is the X available in white?", {"colors"}),
    ("X 有白色的吗？", {"colors"}),
    ("What's the energy use of the X?", {"power"}),
    ("X 耗电吗？", {"power"}),
    ("If my X breaks, am I covered?", {"warranty"}),
    ("X 坏了保几年？", {"warranty"}),
    ("I'm in X - when would a parcel get here?", {"delivery"}),
    ("X 收货要等多少天？", {"delivery"}),
    ("How much power does the X use?", {"power"}),  # an amount, not a price
    ("How much power does the X use, and what does it cost?", {"power", "price"}),
    ("How much is the X?", {"price"}),
    ("Is the X dimmable?", set()),
    ("How heavy is the X?", set()),
    ("X 可以调光吗？", set()),
    ("Do you have a shop in X?", set()),
    ("Can I repay later?", set()),  # a word start, not a substring: not "pay"
    ("Can I change the colour temperature of the X?", set()),  # no colour it comes in
    ("X 能调色温吗？", set()),
    ("Is the X battery powered?", set()),  # what it runs on, not the watts it draws
    ("Is the X powered by USB?", set()),
    ("X 能用电池吗？", set()),
    ("How many watts, and is it battery powered?", {"power"}),
])
def test_the_words_say_which_kind_of_fact_is_asked(text: str, tags: set[str]) -> None:
    assert asked(text) == tags


def test_only_tags_with_words_are_judged() -> None:
    assert judged(["price", "warranty"])
    assert not judged(["price", "installation"]) and not judged([])


def _product(kind: str, score: float, dense: float) -> Hit:
    entry = Entry.model_validate({
        "id": f"halo-{kind}", "questions": {"en": [f"Halo {kind}?"]},
        "answers": {"en": f"The Halo's {kind}."}, "tags": [kind], "product": "Halo",
        "mentions": ["Halo"]})
    return Hit(entry, score, dense, 0.1, f"X {kind}?")


HALO = [_product("warranty", 0.545, 0.904), _product("price", 0.543, 0.900),
        _product("colors", 0.540, 0.898), _product("power", 0.536, 0.890)]


def test_a_named_question_asking_none_of_its_kinds_of_fact_is_abstained() -> None:
    """"Is the Halo floor lamp dimmable?" was answered with the Halo's price (kb)."""
    chosen = choose(HALO, None, Thresholds(), asked=frozenset())
    assert chosen.mode == "abstain" and "Halo" in chosen.reason
    # Unknown words (None), or a complaint for the large tier: as before.
    assert choose(HALO, None, Thresholds()).mode == "grounded"
    assert choose(HALO, "complaint", Thresholds(), asked=frozenset()).mode == "grounded"


def test_the_one_kind_of_fact_asked_picks_its_entry() -> None:
    """"What would the Halo floor lamp set me back?" is nearer in shape to the warranty
    entry's question; its words ask for the price."""
    chosen = choose(HALO, None, Thresholds(), asked=frozenset({"price"}))
    assert chosen.mode == "kb" and chosen.best.entry.id == "halo-price"
    # Two kinds asked: no single entry answers; both ground the tier's answer.
    both = choose(HALO, None, Thresholds(), asked=frozenset({"price", "power"}))
    assert both.mode == "grounded"
    assert {h.entry.id for h in both.entries} == {"halo-price", "halo-power"}


def test_entries_with_a_tag_of_no_words_are_not_judged() -> None:
    other = [*HALO[:3], Hit(Entry.model_validate({
        "id": "halo-setup", "questions": {"en": ["Setting up the Halo?"]},
        "answers": {"en": "Plug it in."}, "tags": ["installation"], "product": "Halo",
        "mentions": ["Halo"]}), 0.53, 0.88, 0.1, "X?")]
    assert choose(other, None, Thresholds(), asked=frozenset()).mode != "abstain"


def test_the_shipped_knowledge_base_abstains_an_unknown_property_and_answers_a_known_one(
        ) -> None:
    from knowledge.embedder import E5Small
    from knowledge.entries import KnowledgeBase
    from knowledge.files import read_file
    from knowledge.lumen import SHIPPED
    from knowledge.retrieval import EmbeddingCache, Retriever

    retriever = Retriever(KnowledgeBase.of(1, read_file(SHIPPED)), EmbeddingCache(E5Small()))

    def answer(question: str, context: str = "") -> tuple[str, str | None]:
        chosen = choose(retriever.search(question, context=context), None, Thresholds(),
                        asked=retriever.asked(question, context))
        return chosen.mode, chosen.best.entry.id if chosen.best else None

    assert answer("Is the Halo floor lamp dimmable?") == ("abstain", None)
    assert answer("How do I reset the Pixel smart bulb?") == ("abstain", None)
    assert answer("Iris 落地灯可以调光吗？") == ("abstain", None)
    assert answer("What would the Iris floor lamp set me back?") == (
        "kb", "iris-floor-lamp-price")
    assert answer("How much power does the Iris floor lamp use?") == (
        "kb", "iris-floor-lamp-power")
    assert answer("How much power does the Iris floor lamp use, and what does it cost?"
                  )[0] == "grounded"
    assert answer("那它保修多久？", context="Iris 落地灯多少钱？") == (
        "kb", "iris-floor-lamp-warranty")
    # A product the knowledge base does not hold, of a kind one shipped product has: not
    # that product's price (the Echo pendant light's, until 2026-12-05).
    assert answer("How much is the Zenith pendant light?") == ("abstain", None)
    assert answer("星辰吊灯多少钱？") == ("abstain", None)
    assert answer("How much is the pendant light?") == ("kb", "echo-pendant-light-price")
    # A shop-wide entry closer in meaning still answers a question that names a product.
    assert answer("My Aurora flickers after three months - how do I make a warranty claim?"
                  )[1] == "warranty-claim"
