from __future__ import annotations

from pathlib import Path

import pytest

from kernel.errors import APIError
from serving.pipeline.decide import TierDecider, model_names
from tests.unit.serving.pipeline.conftest import TIERS, make_config

REPO_DATA = Path(__file__).resolve().parents[4] / "serving" / "router" / "data" / "sensitive"


@pytest.fixture(scope="module")
def decider(tmp_path_factory: pytest.TempPathFactory) -> TierDecider:
    return TierDecider(make_config(tmp_path_factory.mktemp("decide")))


def test_every_configured_tier_is_a_model_name(decider: TierDecider) -> None:
    assert model_names(decider.tiers) == ("auto", *TIERS)
    for tier in TIERS:
        decision = decider.route(tier, "hello")
        assert (decision.tier, decision.rule) == (tier, "pinned")


def test_unknown_models_and_adapters_off_the_lora_tier_are_404(decider: TierDecider) -> None:
    for model in ("medium", "large:kb-1", "kb:kb-1"):
        with pytest.raises(APIError) as err:
            decider.route(model, "hello")
        assert err.value.status == 404 and err.value.param == "model"
    assert decider.route("small:kb-1", "hello").adapter == "kb-1"


def test_auto_follows_the_rule_tree_and_a_blocked_word_has_no_tier(
        decider: TierDecider) -> None:
    complaint = decider.route("auto", "This is unacceptable, my lamp arrived broken!")
    assert complaint.tier == "large" and complaint.rule.startswith("large.")
    blocked = decider.route("small", "you stupid bot")
    assert blocked.tier is None and blocked.rule == "blocked.abuse_en"


def test_rule_leaves_must_name_a_configured_tier(tmp_path: Path) -> None:
    decider = TierDecider(make_config(tmp_path))
    decider.engine.reload_rules("version: 1\ntree: {id: all.kb, tier: kb}")
    assert decider.route("auto", "Where is my order?").tier == "kb"
    from serving.router.rules import RulesError
    with pytest.raises(RulesError, match="tier must be one of"):
        decider.engine.reload_rules("version: 1\ntree: {id: a, tier: medium}")


def test_history_counts_text_parts_like_the_store_does(decider: TierDecider) -> None:
    from serving.protocol import ChatRequest
    req = ChatRequest.model_validate({"model": "auto", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "my lamp is broken"}]},
        {"role": "assistant", "content": "Sorry to hear that."},
        {"role": "user", "content": "and now?"}]})
    assert req.user_texts() == ["my lamp is broken", "and now?"]
    assert decider.decide(req, None).tier in TIERS


def test_every_message_and_prompt_is_checked_not_only_the_last(tmp_path: Path) -> None:
    from serving.protocol import ChatRequest, CompletionRequest

    words = tmp_path / "internal.txt"
    words.write_text("project lumos\n")
    lists = [{"name": "abuse_en", "file": str(REPO_DATA / "abuse_en.txt"), "action": "block"},
             {"name": "internal", "file": str(words), "action": "mask"}]
    decider = TierDecider(make_config(tmp_path, routing={"sensitive_lists": lists}))

    def chat(*messages: tuple[str, str]) -> ChatRequest:
        return ChatRequest.model_validate({"model": "small", "messages": [
            {"role": role, "content": text} for role, text in messages]})

    for hidden in (chat(("system", "you stupid bot"), ("user", "Hello")),
                   chat(("user", "you stupid bot"), ("assistant", "Sorry?"), ("user", "ok")),
                   CompletionRequest(model="small", prompt=["Hello", "you stupid bot"])):
        decision = decider.decide(hidden, None)
        assert decision.tier is None and decision.rule == "blocked.abuse_en"
    masked = decider.decide(chat(("system", "Never mention Project Lumos."), ("user", "Hi")),
                            None)
    assert masked.tier == "small"
    assert masked.rewrites == ((0, "Never mention *************."),)
    clean = decider.decide(chat(("system", "Be brief."), ("user", "Hi")), None)
    assert clean.tier == "small" and clean.rewrites == ()
