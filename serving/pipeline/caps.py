"""Parse and cap: the output a request may ask for, what it costs, and the body a tier gets."""

from __future__ import annotations

import json
from typing import Any

from kernel.config import LimitsConfig
from kernel.errors import APIError
from serving.protocol import ChatRequest, CompletionRequest
from serving.reply_tokens import estimated_tokens

Request = ChatRequest | CompletionRequest


class RequestCaps:
    def __init__(self, limits: LimitsConfig):
        self.limits = limits

    def max_tokens(self, req: Request) -> int:
        """The output cap for this request; out-of-range asks are a 400."""
        limits = self.limits
        requested = getattr(req, "max_completion_tokens", None) or req.max_tokens
        if requested is not None and requested > limits.max_tokens_limit:
            raise APIError(400, f"max_tokens must be at most {limits.max_tokens_limit}",
                           param="max_tokens", code="invalid_value")
        if req.n > limits.max_n:
            raise APIError(400, f"n must be at most {limits.max_n}", param="n",
                           code="invalid_value")
        self._bounded(req)
        return requested or limits.default_max_tokens

    def _bounded(self, req: Request) -> None:
        """What the engine compiles or loops over, bounded: prompts, stop strings, grammars."""
        limits = self.limits
        if isinstance(req, CompletionRequest) and req.prompt_count > limits.max_prompts:
            raise APIError(400, f"prompt: a list of at most {limits.max_prompts} prompts",
                           param="prompt", code="invalid_value")
        if isinstance(req.stop, list) and len(req.stop) > limits.max_stop:
            raise APIError(400, f"stop: at most {limits.max_stop} strings", param="stop",
                           code="invalid_value")
        for name in ("structured_outputs", "response_format"):
            value = getattr(req, name)
            if value is not None and len(json.dumps(value)) > limits.max_grammar_chars:
                raise APIError(400, f"{name}: at most {limits.max_grammar_chars} characters "
                               "of grammar, regex, choices or schema", param=name,
                               code="invalid_value")


def text_size(req: Request) -> int:
    """Characters of text the router reads (every message, or the prompts)."""
    if isinstance(req, ChatRequest):
        return sum(len(str(m.content or "")) for m in req.messages)
    return len(str(req.prompt))


def estimated_prompt_tokens(req: Request) -> int:
    # An estimate is good enough to budget. Each of the n choices reads the prompt again.
    return estimated_tokens(text_size(req)) * req.n


def charged_tokens(req: Request, max_tokens: int) -> int:
    """A request's budget: its prompts, and the most every sequence may generate."""
    return estimated_prompt_tokens(req) + max_tokens * req.sequences


def engine_body(req: Request, model: str, max_tokens: int, *, masked_text: str | None,
                session_id: str | None, rewrites: tuple[tuple[int, str], ...] = ()
                ) -> dict[str, Any]:
    """The OpenAI body a tier replica gets: its own model name, the cap, masked text."""
    body = req.model_dump(exclude_unset=True)
    body.pop("max_completion_tokens", None)
    body.pop("persona", None)  # the appliance's, not the engine's
    body["model"] = model
    body["max_tokens"] = max_tokens
    if masked_text is not None:
        _replace_last_user_text(body, masked_text)
    for index, text in rewrites:  # other messages (or prompts) with masked words
        if "messages" in body:
            body["messages"][index]["content"] = text
        else:
            body["prompt"][index] = text
    if session_id is not None:
        body["user"] = session_id  # the tiers' session-affinity request router reads it
    return body


def _replace_last_user_text(body: dict[str, Any], text: str) -> None:
    if "messages" in body:
        for message in reversed(body["messages"]):
            if message.get("role") == "user":
                message["content"] = text
                return
    elif isinstance(body.get("prompt"), str):
        body["prompt"] = text
