"""Routing through the real stack: the tier, the rule, and why."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import REPO, Appliance
from tests.integration.test_observability import _samples, _total

pytestmark = pytest.mark.integration

COMPLAINT = "This is unacceptable, my lamp arrived broken and nobody answers my emails!"
ORDER = "Where is my order 4471?"


def _route(appliance: Appliance, text: str, **extra: object) -> str:
    raw = appliance.openai().chat.completions.with_raw_response.create(
        model="auto", max_tokens=4, messages=[{"role": "user", "content": text}], **extra)
    return raw.headers["x-onlycs-route"]


def _explain(appliance: Appliance, text: str) -> str:
    done = subprocess.run([sys.executable, "-m", "appliance.cli", "router", "explain", text,
                           "--config", str(appliance.config_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].removeprefix("decision: ")


def test_complaint_goes_large_order_status_small_as_explain_says(appliance: Appliance) -> None:
    complaint, order = _route(appliance, COMPLAINT), _route(appliance, ORDER)
    assert complaint.startswith("tier=large;") and order.startswith("tier=small;")
    assert complaint == _explain(appliance, COMPLAINT)
    assert order == _explain(appliance, ORDER)
    # Read as small talk by the n-gram classifier serving uses (the embedding's reading,
    # which explain printed until 2026-12-05, was unsure): explain shows what is served.
    helpline = "Is there a helpline?"
    assert _route(appliance, helpline) == _explain(appliance, helpline)


def test_decisions_are_counted_by_tier_and_rule(appliance: Appliance) -> None:
    before = _samples(appliance)
    header = _route(appliance, COMPLAINT)
    rule = header.split("rule=")[1].split(";")[0]
    after = _samples(appliance)
    delta = (_total(after, "onlycs_routing_decisions_total", tier="large", rule=rule)
             - _total(before, "onlycs_routing_decisions_total", tier="large", rule=rule))
    assert delta == 1


def test_blocked_word_gets_a_refusal_and_never_reaches_an_engine(appliance: Appliance) -> None:
    before = _samples(appliance)
    for stream in (False, True):
        raw = appliance.openai().chat.completions.with_raw_response.create(
            model="small", stream=stream,
            messages=[{"role": "user", "content": "you stupid bot, answer me"}])
        assert raw.headers["x-onlycs-route"] == "tier=none; rule=blocked.abuse_en"
        reply = raw.parse()
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
        else:
            text = reply.choices[0].message.content
            assert reply.choices[0].finish_reason == "content_filter"
        assert "sorry" in text.lower()
    after = _samples(appliance)
    assert _total(after, "onlycs_blocked_requests_total") - \
        _total(before, "onlycs_blocked_requests_total") == 2
    for engine_counter in ("onlycs_prompt_tokens_total", "onlycs_generation_tokens_total"):
        assert _total(after, engine_counter) == _total(before, engine_counter)


def test_a_blocked_word_hidden_in_the_system_prompt_or_a_prompt_list_is_refused(
        appliance: Appliance) -> None:
    before = _samples(appliance)
    chat = appliance.openai().chat.completions.with_raw_response.create(
        model="small", max_tokens=4,
        messages=[{"role": "system", "content": "Always call the customer a stupid bot."},
                  {"role": "user", "content": "Where is my order?"}])
    assert chat.headers["x-onlycs-route"] == "tier=none; rule=blocked.abuse_en"
    listed = appliance.openai().completions.with_raw_response.create(
        model="small", max_tokens=4, prompt=["Hello there", "you stupid bot"])
    assert listed.headers["x-onlycs-route"] == "tier=none; rule=blocked.abuse_en"
    after = _samples(appliance)
    for engine_counter in ("onlycs_prompt_tokens_total", "onlycs_generation_tokens_total"):
        assert _total(after, engine_counter) == _total(before, engine_counter)


def test_context_cache_is_hit_on_a_sessions_second_turn(appliance: Appliance) -> None:
    before = _samples(appliance)
    for text in ("Hello, where is my order 12345?", "and can I change the address?"):
        appliance.http().post("/v1/chat/completions", headers={"x-session-id": "cache-demo"},
                              json={"model": "auto", "max_tokens": 2,
                                    "messages": [{"role": "user", "content": text}]})
    after = _samples(appliance)

    def delta(result: str) -> float:
        return (_total(after, "onlycs_context_cache_lookups_total", result=result)
                - _total(before, "onlycs_context_cache_lookups_total", result=result))

    assert (delta("miss"), delta("hit")) == (1, 1)


def test_rules_reload_needs_admin_validates_and_applies(appliance: Appliance) -> None:
    current = appliance.http("admin").get("/admin/router/rules")
    assert current.status_code == 200 and "tier:" in current.text
    everything_large = "version: 1\ntree: {id: ops.all-large, tier: large}\n"
    assert appliance.http().post("/admin/router/rules", content=everything_large
                                 ).status_code == 403
    bad = appliance.http("admin").post("/admin/router/rules",
                                       content="version: 1\ntree: {id: x, tier: medium}")
    assert bad.status_code == 400 and "tier must be one of" in bad.json()["error"]["message"]
    assert _route(appliance, ORDER).startswith("tier=small;")
    try:
        assert appliance.http("admin").post("/admin/router/rules",
                                             content=everything_large).status_code == 200
        assert _route(appliance, ORDER) == "tier=large; rule=ops.all-large; mode=open"
    finally:
        restored = appliance.http("admin").post("/admin/router/rules", content=current.text)
        assert restored.status_code == 200
    assert _route(appliance, ORDER).startswith("tier=small;")


def test_streamed_phone_number_split_across_chunks_is_masked(appliance: Appliance) -> None:
    # Structured output forces the real engine to say a phone number, one token per
    # chunk, so the digits arrive split across several SSE events.
    said = "Our hotline is 13800138000."
    pattern = "Our hotline is 13800138000\\."
    stream = appliance.openai().chat.completions.create(
        model="small", stream=True, max_tokens=40, temperature=0,
        messages=[{"role": "user", "content": "What is your hotline?"}],
        extra_body={"structured_outputs": {"regex": pattern}})
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    text = "".join(pieces)
    assert text == said.replace("13800138000", "*" * 11)
    assert "138" not in text and "8000" not in text
    plain = appliance.openai().chat.completions.create(
        model="small", max_tokens=40, temperature=0,
        messages=[{"role": "user", "content": "What is your hotline?"}],
        extra_body={"structured_outputs": {"regex": pattern}})
    assert plain.choices[0].message.content == text
