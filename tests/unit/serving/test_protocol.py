from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from serving.protocol import ChatRequest, CompletionRequest


def test_last_user_text_reads_string_and_parts() -> None:
    req = ChatRequest.model_validate({"messages": [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]}]})
    assert req.last_user_text() == "second"
    assert CompletionRequest.model_validate({"prompt": "p"}).last_user_text() == "p"


def test_only_allow_listed_fields_pass_through_to_the_engine() -> None:
    req = ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}],
                                      "ignore_eos": True, "top_k": 5, "logprobs": False})
    assert req.model_dump(exclude_unset=True) | {"messages": None} == {
        "messages": None, "ignore_eos": True, "top_k": 5, "logprobs": False}
    with pytest.raises(ValidationError) as caught:
        ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}],
                                    "chat_template": "{{ secrets }}"})
    assert caught.value.errors()[0]["loc"] == ("chat_template",)


@pytest.mark.parametrize(("field", "value"), [
    ("logprobs", True), ("top_logprobs", 5), ("prompt_logprobs", 1), ("echo", True),
    ("tools", [{"type": "function", "function": {"name": "f"}}]), ("tool_choice", "auto"),
    ("best_of", 3)])
def test_fields_whose_text_skips_the_filter_are_refused_by_name(field: str, value) -> None:
    for model, base in ((ChatRequest, {"messages": [{"role": "user", "content": "x"}]}),
                        (CompletionRequest, {"prompt": "x"})):
        with pytest.raises(ValidationError) as caught:
            model.model_validate(base | {field: value})
        assert caught.value.errors()[0]["loc"] == (field,)
        assert "output filter" in caught.value.errors()[0]["msg"]


def test_a_completion_counts_one_sequence_per_prompt_and_choice() -> None:
    assert CompletionRequest.model_validate({"prompt": ["a", "b", "c"], "n": 4}).sequences == 12
    assert CompletionRequest.model_validate({"prompt": [1, 2, 3]}).sequences == 1
    assert ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}],
                                       "n": 3}).sequences == 3


@pytest.mark.parametrize("bad", [
    {"n": 0}, {"temperature": -1}, {"stream": "yes"}, {"messages": []}, {"max_tokens": 0},
    {"messages": [{"role": "user", "content": ""}]},
    {"messages": [{"role": "user", "content": " \n\t "}]},
    {"messages": [{"role": "user", "content": "bad \ud800 text"}]},
])
def test_rejected_before_any_engine(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}]} | bad)


def test_router_modules_import_neither_vllm_nor_torch() -> None:
    code = ("import sys, serving.ingress.deployment, serving.pipeline.chain, serving.protocol, "
            "serving.router.engine, serving.router.embedder;"
            "print(sorted(m for m in ('vllm', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
