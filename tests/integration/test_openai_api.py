"""The OpenAI-compatible API through the official `openai` client, against the real stack."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.conftest import DEFAULT_MAX_TOKENS, EXTRA_TIER, Appliance
from tests.integration.test_observability import _samples, _total

pytestmark = pytest.mark.integration

# Small talk: `auto` sends it to a tier (a shop-fact question would be the knowledge base's).
QUESTION = [{"role": "user", "content": "Hello! Who am I talking to?"}]


def test_models_lists_auto_and_both_tiers(appliance: Appliance) -> None:
    ids = [m.id for m in appliance.openai().models.list().data]
    # auto, the configured tiers (the shipped two, then the session's third), adapters.
    assert ids[:4] == ["auto", "small", "large", EXTRA_TIER]
    assert all(i.startswith("small:") for i in ids[4:])  # loaded LoRA adapters


def test_health_and_readiness(appliance: Appliance) -> None:
    assert appliance.http().get("/healthz").json() == {"status": "ok"}
    ready = appliance.http().get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["tiers"]["small"]["ready"] and ready["tiers"]["large"]["ready"]


def test_openapi_schema_and_docs(appliance: Appliance) -> None:
    schema = appliance.http().get("/openapi.json").json()
    assert "/v1/chat/completions" in schema["paths"]
    assert "/v1/completions" in schema["paths"]
    assert "swagger" in appliance.http().get("/docs").text.lower()


@pytest.mark.parametrize(("model", "tier"), [("auto", "small"), ("small", "small"),
                                             ("large", "large")])
def test_chat_each_model(appliance: Appliance, model: str, tier: str) -> None:
    raw = appliance.openai().chat.completions.with_raw_response.create(
        model=model, messages=QUESTION, max_tokens=16)
    assert raw.headers["x-onlycs-route"].startswith(f"tier={tier};")
    reply = raw.parse()
    assert reply.object == "chat.completion"
    assert reply.model == tier
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.strip()
    usage = reply.usage
    assert 0 < usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_the_large_tier_runs_on_smalls_engine_under_its_own_name(appliance: Appliance) -> None:
    # The session's appliance keeps the shipped default: both tiers serve the bundled model.
    assert appliance.http().get("/readyz").json()["tiers"]["large"]["engine"] == "small"
    before = _samples(appliance)
    raw = appliance.openai().chat.completions.with_raw_response.create(
        model="large", messages=QUESTION, max_tokens=8, extra_body={"ignore_eos": True})
    chunks = list(appliance.openai().chat.completions.create(
        model="large", messages=QUESTION, max_tokens=8, stream=True))
    after = _samples(appliance)
    assert raw.parse().model == "large" and raw.headers["x-onlycs-route"].startswith(
        "tier=large; rule=pinned")
    assert {c.model for c in chunks} == {"large"}
    grown = (_total(after, "onlycs_generation_tokens_total", tier="small")
             - _total(before, "onlycs_generation_tokens_total", tier="small"))
    assert grown >= 8 + 1
    assert _total(after, "onlycs_generation_tokens_total", tier="large") == 0
    assert _total(after, "onlycs_requests_total", tier="large") > _total(
        before, "onlycs_requests_total", tier="large")


@pytest.mark.parametrize("model", ["auto", "small", "large"])
def test_chat_streaming_with_usage(appliance: Appliance, model: str) -> None:
    stream = appliance.openai().chat.completions.create(
        model=model, messages=QUESTION, max_tokens=24, stream=True,
        stream_options={"include_usage": True},
        # A two-token answer ("Hello?") leaves in one piece: the output filter holds a word
        # until it can no longer be an e-mail address's local part, and a sampled answer
        # once began with a made-up word of 15 tokens (test_sdk). 24 tokens make several.
        extra_body={"ignore_eos": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 1, "answer arrived in one piece: not streamed"
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens <= 24


def test_completions_plain_and_streamed(appliance: Appliance) -> None:
    client = appliance.openai()
    reply = client.completions.create(model="large", prompt="The opening hours are",
                                      max_tokens=8)
    assert reply.object == "text_completion" and reply.choices[0].text
    assert reply.usage.completion_tokens <= 8
    pieces = [c.choices[0].text for c in client.completions.create(
        model="small", prompt="Our refund policy", max_tokens=24, stream=True,
        extra_body={"ignore_eos": True}) if c.choices]  # several words: see above
    assert len(pieces) > 1 and "".join(pieces)


def test_sampling_parameters_reach_the_engine(appliance: Appliance) -> None:
    client = appliance.openai()

    def sample(**kwargs: object) -> str:
        return client.chat.completions.create(model="small", messages=QUESTION, max_tokens=12,
                                              **kwargs).choices[0].message.content

    seeds = range(4)
    same = {sample(temperature=1.0, top_p=0.9, seed=1234, presence_penalty=0.5,
                   frequency_penalty=0.5) for _ in range(2)}
    assert len(same) == 1, "same seed must give the same sample"
    hot = {sample(temperature=1.5, seed=seed) for seed in seeds}
    assert len(hot) > 1, "the seed reaches the engine: other seeds, other samples"
    greedy = {sample(temperature=0.0, seed=seed) for seed in seeds}
    assert len(greedy) == 1, "temperature 0 reaches the engine: one answer whatever the seed"
    narrow = {sample(temperature=1.5, top_p=0.001, seed=seed) for seed in seeds}
    assert narrow == greedy, "top_p reaches the engine: only the likeliest token is left"
    many = client.chat.completions.create(model="small", messages=QUESTION, max_tokens=6, n=3)
    assert [c.index for c in many.choices] == [0, 1, 2]
    capped = client.chat.completions.create(model="small", messages=QUESTION,
                                            max_completion_tokens=3)
    assert capped.usage.completion_tokens <= 3


def test_stop_sequence_ends_the_answer(appliance: Appliance) -> None:
    reply = appliance.openai().completions.create(
        model="small", prompt="1, 2, 3, 4, 5,", max_tokens=30, temperature=0,
        stop=[" 8"], extra_body={"ignore_eos": True})
    assert reply.choices[0].finish_reason == "stop"
    assert " 8" not in reply.choices[0].text


def test_default_output_cap_applies_without_max_tokens(appliance: Appliance) -> None:
    reply = appliance.openai().chat.completions.create(
        model="small", messages=QUESTION, extra_body={"ignore_eos": True})
    assert reply.usage.completion_tokens == DEFAULT_MAX_TOKENS
    assert reply.choices[0].finish_reason == "length"


async def test_sixteen_concurrent_requests_all_complete(appliance: Appliance) -> None:
    client = appliance.async_openai()

    async def one(i: int) -> int:
        model = ("small", "large", "auto")[i % 3]
        if i % 2:
            stream = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"Tell me fact {i}."}],
                max_tokens=16, stream=True)
            return len([c async for c in stream if c.choices and c.choices[0].delta.content])
        reply = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"Tell me fact {i}."}],
            max_tokens=16)
        return reply.usage.completion_tokens

    results = await asyncio.gather(*(one(i) for i in range(18)))
    assert len(results) == 18 and all(n > 0 for n in results)
