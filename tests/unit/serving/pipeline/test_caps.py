from __future__ import annotations

import pytest

from kernel.config import LimitsConfig
from kernel.errors import APIError
from serving.pipeline.caps import (
    RequestCaps,
    charged_tokens,
    engine_body,
    estimated_prompt_tokens,
)
from serving.protocol import ChatRequest, CompletionRequest


def _chat(**extra: object) -> ChatRequest:
    return ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": "hello there"}]} | extra)


def test_no_max_tokens_gets_the_default_and_too_many_is_a_400() -> None:
    caps = RequestCaps(LimitsConfig(default_max_tokens=7, max_tokens_limit=50, max_n=2))
    assert caps.max_tokens(_chat()) == 7
    assert caps.max_tokens(_chat(max_completion_tokens=9)) == 9
    for bad, param in (({"max_tokens": 51}, "max_tokens"), ({"n": 3}, "n")):
        with pytest.raises(APIError) as err:
            caps.max_tokens(_chat(**bad))
        assert (err.value.status, err.value.param) == (400, param)


def test_the_tier_gets_its_model_the_cap_masked_text_and_the_session() -> None:
    body = engine_body(_chat(max_completion_tokens=5, temperature=0.5), "small:kb", 5,
                       masked_text="***** there", session_id="s-1")
    assert body["model"] == "small:kb" and body["max_tokens"] == 5
    assert "max_completion_tokens" not in body and body["temperature"] == 0.5
    assert body["messages"][-1]["content"] == "***** there" and body["user"] == "s-1"
    prompt = engine_body(CompletionRequest(prompt="abc"), "large", 3, masked_text="***",
                         session_id=None)
    assert prompt["prompt"] == "***" and "user" not in prompt


def test_prompt_estimate_grows_with_the_text() -> None:
    assert estimated_prompt_tokens(_chat()) < estimated_prompt_tokens(
        ChatRequest.model_validate({"messages": [{"role": "user", "content": "x" * 400}]}))


def _completion(prompts: int, **extra: object) -> CompletionRequest:
    return CompletionRequest.model_validate(
        {"prompt": [f"prompt {i}" for i in range(prompts)]} | extra)


def test_every_sequence_is_charged_not_one_per_request() -> None:
    one = charged_tokens(_completion(1, n=1), 2048)
    assert charged_tokens(_completion(500, n=4), 2048) >= 500 * 4 * 2048 > 1000 * one


def test_what_the_engine_loops_over_or_compiles_is_bounded() -> None:
    caps = RequestCaps(LimitsConfig(max_prompts=32, max_stop=8, max_grammar_chars=1000))
    assert caps.max_tokens(_completion(32)) == 256
    for req, param in ((_completion(33), "prompt"),
                       (_chat(stop=[f"s{i}" for i in range(9)]), "stop"),
                       (_chat(structured_outputs={"regex": "a" * 2000}), "structured_outputs"),
                       (_chat(response_format={"type": "json_schema", "json_schema": {
                           "schema": {"enum": ["x" * 50] * 40}}}), "response_format")):
        with pytest.raises(APIError) as err:
            caps.max_tokens(req)
        assert (err.value.status, err.value.param) == (400, param)
