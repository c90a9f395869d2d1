"""Bad requests get OpenAI-shaped 4xx errors, never reach an engine, and break nothing."""

from __future__ import annotations

import openai
import pytest

from tests.integration.conftest import Appliance

pytestmark = pytest.mark.integration

HI = [{"role": "user", "content": "hi"}]


def _assert_openai_error(body: dict, param: str | None = None) -> dict:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


@pytest.mark.parametrize(("kwargs", "status", "param"), [
    ({"model": "gpt-4"}, 404, "model"),
    ({"max_tokens": 100_000}, 400, "max_tokens"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"n": 50}, 400, "n"),
    ({"n": 0}, 400, "n"),
    ({"temperature": 7}, 400, "temperature"),
    ({"top_p": 0}, 400, "top_p"),
])
def test_out_of_range_parameters(appliance: Appliance, kwargs: dict, status: int,
                                 param: str) -> None:
    args = {"model": "small", "messages": HI} | kwargs
    with pytest.raises(openai.APIStatusError) as info:
        appliance.openai().chat.completions.create(**args)
    assert info.value.status_code == status
    _assert_openai_error(info.value.response.json(), param)


def test_prompt_longer_than_context_names_the_limit(appliance: Appliance) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        appliance.openai().chat.completions.create(
            model="small", messages=[{"role": "user", "content": "hello " * 3000}])
    error = _assert_openai_error(info.value.response.json())
    assert "2048" in error["message"]


@pytest.mark.parametrize(("payload", "param"), [
    (b"{not json", None),
    (b"[]", None),
    (b'{"messages": "hello"}', "messages"),
    (b'{"messages": []}', "messages"),
    (b'{"messages": [{"role": "wizard", "content": "x"}]}', "messages.0.role"),
    (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}', "max_tokens"),
    (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
    (b'{"messages": [{"role": "user", "content": ""}]}', None),
    (b'{"messages": [{"role": "user", "content": "   "}]}', None),
    (b'{"messages": [{"role": "user", "content": "hi \\ud800 there"}]}', "messages.0.content"),
])
def test_malformed_bodies(appliance: Appliance, payload: bytes, param: str | None) -> None:
    response = appliance.http().post("/v1/chat/completions", content=payload,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    _assert_openai_error(response.json(), param)


def test_hundred_kilobyte_message_is_a_clear_400(appliance: Appliance) -> None:
    response = appliance.http().post("/v1/chat/completions", json={
        "model": "auto", "messages": [{"role": "user", "content": "where is my order " * 5700}]})
    error = _assert_openai_error(response.json())
    assert response.status_code == 400 and "2048" in error["message"]


def test_completion_without_prompt(appliance: Appliance) -> None:
    response = appliance.http().post("/v1/completions", json={"model": "small"})
    assert response.status_code == 400
    _assert_openai_error(response.json(), "prompt")


def test_server_keeps_serving_after_bad_input(appliance: Appliance) -> None:
    for payload in (b"{", b"null", b'{"messages": 5}'):
        appliance.http().post("/v1/chat/completions", content=payload)
    reply = appliance.openai().chat.completions.create(model="small", messages=HI, max_tokens=4)
    assert reply.choices[0].message.content is not None
    assert appliance.http().get("/readyz").status_code == 200


@pytest.mark.parametrize(("path", "extra", "param"), [
    ("/v1/chat/completions", {"frobnicate": 1}, "frobnicate"),
    ("/v1/chat/completions", {"chat_template": "{{ x }}"}, "chat_template"),
    ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 5}, "logprobs"),
    ("/v1/chat/completions", {"tools": [{"type": "function", "function": {"name": "f"}}]},
     "tools"),
    ("/v1/chat/completions", {"stop": [f"s{i}" for i in range(9)]}, "stop"),
    ("/v1/chat/completions", {"structured_outputs": {"regex": "a" * 20_000}},
     "structured_outputs"),
    ("/v1/completions", {"prompt": ["x"] * 33}, "prompt"),
    ("/v1/completions", {"prompt": "x", "echo": True}, "echo"),
    ("/v1/completions", {"prompt": "x", "prompt_logprobs": 1}, "prompt_logprobs"),
])
def test_fields_outside_the_allow_list_or_bounds_are_400_by_name(
        appliance: Appliance, path: str, extra: dict, param: str) -> None:
    base = {"model": "small"} | ({"messages": HI} if "chat" in path else {})
    response = appliance.http().post(path, json=base | extra)
    assert response.status_code == 400, response.text
    _assert_openai_error(response.json(), param)
