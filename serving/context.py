"""What a chat request carries to the engine beyond its own messages: the persona's
system prompt and the session's stored history, trimmed to fit the context."""

from __future__ import annotations

from typing import Any

from kernel.config import SessionsConfig
from kernel.errors import APIError
from serving.protocol import ChatRequest, Message

PERSONA_HEADER = "x-onlycs-persona"


def persona_name(headers: Any, req: ChatRequest, key_persona: str | None) -> str | None:
    return headers.get(PERSONA_HEADER) or req.persona or key_persona


def persona_prompt(config: SessionsConfig, name: str | None) -> str | None:
    if name is None:
        return None
    persona = config.personas.get(name)
    if persona is None:
        raise APIError(400, f"unknown persona {name!r}; available: "
                       f"{', '.join(sorted(config.personas))}", param="persona",
                       code="unknown_persona")
    return persona.system


def trimmed(history: list[dict], budget_chars: int) -> list[dict]:
    """The most recent messages that fit the budget, whole turns first to go."""
    kept, size = [], 0
    for message in reversed(history):
        size += len(message["content"])
        if size > budget_chars:
            break
        kept.append(message)
    kept.reverse()
    while kept and kept[0]["role"] == "assistant":  # never start mid-turn
        kept.pop(0)
    return [m for m in kept if m["role"] in ("user", "assistant")]


def with_context(req: ChatRequest, system: str | None, history: list[dict]) -> ChatRequest:
    """System text first (the request's own wins over a persona), then history, then the
    request's other messages."""
    own_system = [m for m in req.messages if m.role in ("system", "developer")]
    rest = [m for m in req.messages if m.role not in ("system", "developer")]
    head = own_system or ([Message(role="system", content=system)] if system else [])
    past = [Message(role=m["role"], content=m["content"]) for m in history]
    messages = head + past + rest
    if messages == req.messages:
        return req
    return req.model_copy(update={"messages": messages})
