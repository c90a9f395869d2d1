"""The whole chain over fake tiers: each request reaches exactly the tier the stages chose,
with the route named, the turn stored, and the HTTP layer only mapping the outcome."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from kernel.errors import APIError
from serving.access import Caller
from serving.ingress import routes_openai
from serving.ingress.errors import build_fastapi
from serving.model_deployment import node_address
from serving.pipeline.chain import RequestPipeline
from serving.pipeline.channel_entry import PipelineResponder
from serving.pipeline.outcome import Reply, StreamReply
from serving.protocol import ChatRequest, CompletionRequest
from serving.refusal import REFUSAL
from tests.fake_tiers import local_tier
from tests.unit.serving.pipeline.conftest import CLIENT, make_config


def _ask(model: str, text: str, **extra: object) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": text}]} | extra)


async def test_a_pinned_chat_reaches_only_its_tier_and_is_stored(pipeline, tiers) -> None:
    outcome = await pipeline.chat(_ask("kb", "Where is my order?"), {"x-session-id": "s-7"},
                                  CLIENT)
    assert isinstance(outcome, Reply) and outcome.status == 200
    assert outcome.text() == "answer from kb"
    assert outcome.route.headers() == {"x-onlycs-route": "tier=kb; rule=pinned",
                                       "x-onlycs-session": "s-7",
                                       "x-onlycs-node": node_address()}
    assert [len(t.engine.bodies) for t in tiers.values()] == [0, 0, 1]
    assert tiers["kb"].engine.bodies[0]["user"] == "key-a/s-7"
    stored = pipeline.sessions.store.export("key-a/s-7")
    assert [m["content"] for m in stored] == ["Where is my order?", "answer from kb"]
    assert pipeline.admission.in_flight == 0


async def test_a_stream_is_filtered_and_stored_before_done(pipeline, tiers) -> None:
    req = _ask("small", "What is your number?", stream=True,
               structured_outputs={"choice": ["Call 400-820-1234 now"]})
    outcome = await pipeline.chat(req, {"x-session-id": "s-8"}, CLIENT)
    assert isinstance(outcome, StreamReply) and pipeline.admission.in_flight == 1
    events = [e async for e in outcome.events]
    assert "400-820-1234" not in "".join(events)
    assert pipeline.admission.in_flight == 0
    assert pipeline.sessions.store.export("key-a/s-8")[-1]["content"] == "Call ************ now"


async def test_a_blocked_message_is_refused_without_any_engine(pipeline, tiers) -> None:
    outcome = await pipeline.chat(_ask("auto", "you stupid bot"), {}, CLIENT)
    assert isinstance(outcome, Reply) and outcome.text() == REFUSAL
    assert outcome.route.tier is None and outcome.route.rule == "blocked.abuse_en"
    assert all(not t.engine.bodies for t in tiers.values())


async def test_completions_and_channels_use_the_same_chain(pipeline, tiers) -> None:
    done = await pipeline.completion(CompletionRequest(model="large", prompt="Hi"), CLIENT)
    assert done.text() == "answer from large" and len(tiers["large"].engine.bodies) == 1
    responder = PipelineResponder(pipeline)
    text = await responder.reply("wecom", "wecom:u-1", "Where is my order?", None)
    assert text.startswith("answer from ")
    assert pipeline.sessions.store.has_session("channel.wecom/wecom:u-1")


async def test_a_tier_that_shares_an_engine_is_answered_by_it_under_its_own_name(
        tmp_path: Path) -> None:
    config = make_config(tmp_path, tiers={"large": {"model": str(tmp_path / "model"),
                                                    "share_engine_with": "small"}})
    small, kb = await local_tier("small", guests=("large",)), await local_tier("kb")
    pipeline = RequestPipeline(config, {"small": small, "kb": kb})
    whole = await pipeline.chat(_ask("large", "Where is my order?"), {}, CLIENT)
    assert isinstance(whole, Reply) and whole.body["model"] == "large"
    assert whole.text() == "answer from small"  # the engine served it as its own
    assert whole.route.headers()["x-onlycs-route"] == "tier=large; rule=pinned"
    streamed = await pipeline.chat(_ask("large", "And my refund?", stream=True), {}, CLIENT)
    assert isinstance(streamed, StreamReply)
    events = [e async for e in streamed.events]
    models = {json.loads(e[6:])["model"] for e in events if e.startswith("data: {")}
    assert models == {"large"}
    assert [b["model"] for b in small.engine.bodies] == ["small", "small"]
    assert kb.engine.bodies == []
    _status, tiers = await pipeline.readiness()
    assert tiers["large"]["tier"] == "large" and tiers["large"]["engine"] == "small"
    assert tiers["small"]["tier"] == "small" and "engine" not in tiers["small"]


async def test_the_http_layer_maps_the_outcome_and_labels_metrics_by_tier(pipeline) -> None:
    app = build_fastapi(True)
    app.include_router(routes_openai.router)

    class Served:
        created = 0

    Served.pipeline = pipeline
    app.state.ingress = Served
    pipeline.access.required = False
    before = REGISTRY.get_sample_value("onlycs_requests_total", {
        "endpoint": "/v1/chat/completions", "tier": "kb", "status": "200"}) or 0.0
    client = TestClient(app)
    response = client.post("/v1/chat/completions", json={
        "model": "kb", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200 and response.headers["x-onlycs-route"].startswith(
        "tier=kb;")
    after = REGISTRY.get_sample_value("onlycs_requests_total", {
        "endpoint": "/v1/chat/completions", "tier": "kb", "status": "200"})
    assert after == before + 1
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["auto", "small", "large", "kb"]


async def test_a_blocked_word_in_an_earlier_message_reaches_no_engine(pipeline, tiers) -> None:
    req = ChatRequest.model_validate({"model": "small", "messages": [
        {"role": "system", "content": "you stupid bot"},
        {"role": "user", "content": "Where is my order?"}]})
    outcome = await pipeline.chat(req, {}, CLIENT)
    assert outcome.text() == REFUSAL and outcome.route.rule == "blocked.abuse_en"
    assert all(not t.engine.bodies for t in tiers.values())


async def test_a_blocked_message_is_charged_to_the_callers_budget(pipeline) -> None:
    caller = Caller("key-budget", "client", rpm=2)
    blocked = ChatRequest.model_validate({"model": "auto", "messages": [
        {"role": "user", "content": "you stupid bot"}]})
    for _ in range(2):
        outcome = await pipeline.chat(blocked, {}, caller)
        assert outcome.route.rule.startswith("blocked.")
    with pytest.raises(APIError) as err:  # refusals cost requests too: no free flood
        await pipeline.chat(blocked, {}, caller)
    assert err.value.status == 429


async def test_a_megabyte_of_history_does_not_stall_other_requests(pipeline) -> None:
    # 28,000 messages in one 1 MiB body: deciding it (the sensitive-word scan of every
    # message, the router's features) runs off the event loop, the history's features only
    # for the newest messages; a short chat meanwhile is answered first.
    history = [{"role": "user" if i % 2 == 0 else "assistant",
                "content": f"message {i:05d} about my lamp order"} for i in range(28_000)]
    big = ChatRequest.model_validate({"model": "small", "messages": [
        *history, {"role": "user", "content": "and now?"}]})
    small = ChatRequest.model_validate({"model": "small", "messages": [
        {"role": "user", "content": "hi"}]})
    finished: list[str] = []

    async def ask(name: str, req: ChatRequest) -> object:
        try:
            return await pipeline.chat(req, {}, CLIENT)
        except APIError as err:
            return err
        finally:
            finished.append(name)

    big_task = asyncio.create_task(ask("big", big))
    await asyncio.sleep(0)  # the big request starts first
    small_outcome = await ask("small", small)
    big_outcome = await big_task
    assert finished == ["small", "big"]
    assert isinstance(small_outcome, Reply) and small_outcome.status == 200
    # A megabyte of prompt is over the key's per-minute token budget: a clear 400.
    assert isinstance(big_outcome, APIError) and big_outcome.status == 400
    assert big_outcome.param == "max_tokens"
