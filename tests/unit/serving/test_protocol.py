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


def test_unknown_fields_pass_through_to_the_engine() -> None:
    req = ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}],
                                      "ignore_eos": True, "logprobs": True})
    assert req.model_dump(exclude_unset=True)["ignore_eos"] is True


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
