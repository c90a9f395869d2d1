"""A third tier named only in the config (`[tiers.kb]` in the session's appliance, its engine
in a replica of its own): the models list, readiness, pinned requests, the rule tree's
leaves and the metrics all take tier names from the config."""

from __future__ import annotations

import pytest

from tests.integration.conftest import EXTRA_TIER, Appliance
from tests.integration.test_observability import _samples, _total

pytestmark = pytest.mark.integration

ORDER = "Where is my order 4471?"
EVERYTHING_TO_EXTRA = f"version: 1\ntree: {{id: all.{EXTRA_TIER}, tier: {EXTRA_TIER}}}\n"


def _chat(appliance: Appliance, model: str) -> str:
    raw = appliance.openai().chat.completions.with_raw_response.create(
        model=model, max_tokens=4, messages=[{"role": "user", "content": ORDER}])
    assert raw.parse().choices[0].message.content
    return raw.headers["x-onlycs-route"]


def test_a_configured_third_tier_is_listed_and_ready(appliance: Appliance) -> None:
    ids = [m.id for m in appliance.openai().models.list().data]
    assert ids[:4] == ["auto", "small", "large", EXTRA_TIER]
    tiers = appliance.http().get("/readyz").json()["tiers"]
    assert sorted(tiers) == sorted(["small", "large", EXTRA_TIER])
    assert tiers[EXTRA_TIER]["ready"] and tiers[EXTRA_TIER]["tier"] == EXTRA_TIER
    # small's engine runs in the router's process (the shipped default), this one's in a
    # replica of its own (any other tier's default).
    assert tiers[EXTRA_TIER]["placement"] == "replica"
    assert tiers["small"]["placement"] == "router"


def test_pinned_requests_reach_the_third_tiers_engine(appliance: Appliance) -> None:
    before = _samples(appliance)
    assert _chat(appliance, EXTRA_TIER) == f"tier={EXTRA_TIER}; rule=pinned"
    after = _samples(appliance)
    for name in ("onlycs_generation_tokens_total", "onlycs_requests_total"):
        grown = _total(after, name, tier=EXTRA_TIER) - _total(before, name, tier=EXTRA_TIER)
        assert grown >= 1, name
    assert (_total(after, "onlycs_generation_tokens_total", tier="small")
            == _total(before, "onlycs_generation_tokens_total", tier="small"))


def test_rule_leaves_may_name_the_third_tier_and_only_configured_tiers(
        appliance: Appliance) -> None:
    admin = appliance.http("admin")
    original = admin.get("/admin/router/rules").text
    unknown = admin.post("/admin/router/rules", content="version: 1\ntree: {id: a, tier: medium}")
    assert unknown.status_code == 400 and "medium" in unknown.json()["error"]["message"]
    assert admin.post("/admin/router/rules", content=EVERYTHING_TO_EXTRA).status_code == 200
    try:
        assert _chat(appliance, "auto") == f"tier={EXTRA_TIER}; rule=all.{EXTRA_TIER}; mode=open"
        decisions = _total(_samples(appliance), "onlycs_routing_decisions_total",
                           tier=EXTRA_TIER, rule=f"all.{EXTRA_TIER}")
        assert decisions >= 1
    finally:
        assert admin.post("/admin/router/rules", content=original).status_code == 200
    assert _chat(appliance, "auto").startswith("tier=small;")
