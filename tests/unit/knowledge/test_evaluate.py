"""The `kb eval` scoring, on replies given through httpx's mock transport (the scorer alone;
the served path is what `perf run knowledge-serving` drives)."""

from __future__ import annotations

import httpx

from knowledge.entries import KnowledgeBase
from knowledge.evaluate import evaluate
from knowledge.files import read_file
from knowledge.lumen import SHIPPED


def _scored(question: str, reply: str, mode: str, entry: str | None = None) -> dict:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"x-onlycs-route": f"tier=small; mode={mode}"},
                              json={"choices": [{"message": {"content": reply}}]})

    kb = KnowledgeBase.of(1, read_file(SHIPPED))
    with httpx.Client(transport=httpx.MockTransport(answer), base_url="http://kb") as client:
        report = evaluate(client, kb, [{"question": question, "lang": "en", "entry": entry}],
                          progress=lambda _: None)
    return report["details"][0]


def test_a_true_fact_about_the_named_product_is_no_wrong_fact_even_if_it_answers_nothing():
    question = "How do I reset the Pixel smart bulb?"
    kept = _scored(question, "The Pixel smart bulb costs 12.90 euros.", "grounded")
    assert not kept["wrong_fact"] and not kept["abstained"]
    invented = _scored(question, "The Pixel smart bulb costs 15.00 euros.", "grounded")
    assert invented["wrong_fact"]
    other = _scored(question, "The Pixel smart bulb costs 49.90 euros.", "grounded")
    assert other["wrong_fact"]  # the Aurora's price, not the Pixel's


def test_an_answerable_question_is_right_by_its_entrys_key_terms():
    right = _scored("price of the Pixel?", "It costs 12.90 euros.", "kb",
                    "pixel-smart-bulb-price")
    assert right["right"] and not right["wrong_fact"]
    wrong = _scored("price of the Pixel?", "It costs 14.90 euros.", "open",
                    "pixel-smart-bulb-price")
    assert not wrong["right"] and wrong["wrong_fact"]
