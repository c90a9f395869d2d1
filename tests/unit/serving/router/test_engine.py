"""The routing engine alone: pure Python + numpy, the shipped model and rule file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kernel.config import AppConfig
from serving.pipeline.decide import build_engine
from serving.router.dataset import generate, load
from serving.router.engine import HISTORY_ANALYSED, RoutingEngine
from serving.router.rules import RulesError, parse_rules
from serving.router.sensitive import SensitiveMatcher, mask

FEATURES = frozenset({"length_chars", "p_complaint"})


@pytest.fixture(scope="module")
def engine() -> RoutingEngine:
    return build_engine(AppConfig())


def test_complaint_goes_large_and_order_status_small(engine: RoutingEngine) -> None:
    complaint = engine.decide("This is unacceptable, my lamp arrived broken and nobody "
                              "answers my emails!")
    assert complaint.tier == "large" and complaint.intent == "complaint"
    order = engine.decide("Where is my order 4471?")
    assert order.tier == "small" and order.intent == "order_status"
    assert engine.decide("转人工").tier == "large"
    assert [s.node for s in complaint.path]  # the path that explains the decision


def test_blocked_words_never_get_a_tier(engine: RoutingEngine) -> None:
    for text in ("you stupid bot", "傻逼客服", "Fuck you!"):
        decision = engine.decide(text)
        assert decision.tier is None and decision.rule.startswith("blocked.abuse_")
    assert engine.decide("my class starts at 9, where is my order?").tier == "small"


def test_context_cache_hits_on_later_turns_and_evicts_oldest() -> None:
    small = build_engine(AppConfig.model_validate({"routing": {"context_cache_sessions": 2}}))
    first = small.decide("I am angry, my lamp is broken", session_id="a")
    assert not first.cache_hit
    second = small.decide("and where is my order?", session_id="a")
    assert second.cache_hit and second.features["turn"] == 2
    assert second.features["prior_complaint"] == pytest.approx(first.features["p_complaint"])
    small.decide("hi", session_id="b")
    small.decide("hi", session_id="c")  # evicts "a", the least recently used
    rebuilt = small.decide("again", session_id="a", history=["x", "y"])
    assert not rebuilt.cache_hit and rebuilt.features["turn"] == 3


def test_mask_action_stars_the_term() -> None:
    matcher = SensitiveMatcher({"internal": ("mask", ["project lumos"])})
    text = "Tell me about Project Lumos please"
    assert mask(text, matcher.find(text)) == "Tell me about ************* please"


@pytest.mark.parametrize(("text", "error"), [
    ("version: 1\ntree: {id: a, tier: medium}", "tier must be one of"),
    ("version: 1\ntree: {id: a, when: {feature: nope, above: 1}, then: {id: b, tier: small},"
     " else: {id: c, tier: large}}", "unknown feature 'nope'"),
    ("version: 1\ntree: {id: a, when: {feature: length_chars, above: 1},"
     " then: {id: a, tier: small}, else: {id: c, tier: large}}", "duplicate id 'a'"),
    ("version: 1\ntree: {id: a, when: {feature: length_chars, above: x},"
     " then: {id: b, tier: small}, else: {id: c, tier: large}}", "must be a number"),
    ("tree: [", "not valid YAML"),
    ("version: 2\ntree: {id: a, tier: small}", "version: 1"),
])
def test_rule_files_are_validated_with_the_node_named(text: str, error: str) -> None:
    with pytest.raises(RulesError, match=error):
        parse_rules(text, FEATURES, ("small", "large"))


def test_reload_swaps_only_valid_rules(engine: RoutingEngine) -> None:
    before = engine.rules
    with pytest.raises(RulesError):
        engine.reload_rules("version: 1\ntree: {id: x, tier: nowhere}")
    assert engine.rules is before
    engine.reload_rules("version: 1\ntree: {id: everything.large, tier: large}")
    try:
        decision = engine.decide("Where is my order?")
        assert (decision.tier, decision.rule) == ("large", "everything.large")
    finally:
        engine.rules = before


def test_shipped_dataset_is_reproducible_with_unseen_holdout_phrasings() -> None:
    assert generate() == load()
    train = {r["text"] for r in load("train")}
    holdout = load("holdout")
    assert len(holdout) >= 50 and not any(r["text"] in train for r in holdout)
    assert {r["intent"] for r in holdout} >= {"complaint", "order_status", "refund"}


def test_numpy_embedder_matches_the_torch_model() -> None:
    import torch  # tests may use torch; the router never does
    from transformers import AutoModel, AutoTokenizer

    from serving.router.embedder import MiniLMEmbedder, bundled_model_dir

    folder: Path = bundled_model_dir()
    reference = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ours = MiniLMEmbedder(folder)
    for text in ("Where is my order?", "我的快递到哪里了？"):
        with torch.no_grad():
            hidden = reference(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
        expected = (hidden.mean(0) / hidden.mean(0).norm()).numpy()
        assert float(np.dot(ours.embed(text), expected)) > 0.9999


def test_a_long_client_history_is_read_only_at_its_newest_messages(engine, monkeypatch) -> None:
    read: list[int] = []
    features = engine._message_features

    def counting(text: str, turn: int, **kwargs: object):
        read.append(turn)
        return features(text, turn, **kwargs)

    monkeypatch.setattr(engine, "_message_features", counting)
    history = ["This is unacceptable, my lamp arrived broken!"] + ["ok"] * 4999
    decision = engine.decide("and now?", history=history)
    assert len(read) == HISTORY_ANALYSED + 1 and read[0] == 5000 - HISTORY_ANALYSED + 1
    assert decision.tier is not None


def test_an_intent_is_sure_only_with_probability_or_a_term_signal(engine: RoutingEngine
                                                                  ) -> None:
    complaint = engine.decide("This is unacceptable, my lamp arrived broken!")
    assert complaint.intent == "complaint" and complaint.intent_sure
    guess = engine.decide("Nova 床头灯有什么配色？")  # a colour question the n-grams cannot read
    assert not guess.intent_sure
    assert max(v for k, v in guess.features.items() if k.startswith("p_")) < 0.3


def test_a_text_sent_again_is_decided_alike_without_its_n_grams_again(monkeypatch) -> None:
    from serving.router import features as feat

    engine = build_engine(AppConfig())
    hashed: list[str] = []
    real = feat.hashed_ngrams

    def counting(text: str) -> np.ndarray:
        hashed.append(text)
        return real(text)

    monkeypatch.setattr(feat, "hashed_ngrams", counting)
    first = engine.decide("This is unacceptable, my lamp arrived broken!")
    again = engine.decide("This is unacceptable, my lamp arrived broken!", session_id="s2")
    assert hashed == ["This is unacceptable, my lamp arrived broken!"]
    assert (again.tier, again.rule, again.intent, again.features) == \
        (first.tier, first.rule, first.intent, first.features)
    long = "x " * 600  # over the kept length: worked out each time
    engine.decide(long)
    engine.decide(long)
    assert hashed.count(long) == 2
