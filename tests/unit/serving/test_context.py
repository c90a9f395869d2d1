from __future__ import annotations

import pytest

from kernel.config import SessionsConfig
from kernel.errors import APIError
from serving.context import persona_name, persona_prompt, trimmed, with_context
from serving.protocol import ChatRequest

HISTORY = [{"role": "user", "content": "a" * 50}, {"role": "assistant", "content": "b" * 50},
           {"role": "user", "content": "c" * 50}, {"role": "assistant", "content": "d" * 50}]


def _req(*messages: tuple[str, str], **extra: object) -> ChatRequest:
    return ChatRequest.model_validate(
        {"messages": [{"role": r, "content": c} for r, c in messages], **extra})


def test_persona_from_header_body_or_key_and_unknown_is_400() -> None:
    config = SessionsConfig()
    req = _req(("user", "hi"), persona="friendly")
    assert persona_name({}, req, "formal") == "friendly"
    assert persona_name({"x-onlycs-persona": "game_npc"}, req, None) == "game_npc"
    assert persona_name({}, _req(("user", "hi")), "formal") == "formal"
    assert "Old Tomas" in persona_prompt(config, "game_npc")
    with pytest.raises(APIError) as info:
        persona_prompt(config, "pirate")
    assert info.value.status == 400 and info.value.param == "persona"


def test_history_is_trimmed_oldest_first_and_never_starts_mid_turn() -> None:
    assert trimmed(HISTORY, 1000) == HISTORY
    assert trimmed(HISTORY, 120) == HISTORY[2:]
    assert trimmed(HISTORY, 60) == []  # only "d" fits: an answer without its question


def test_context_order_system_history_then_new_message() -> None:
    built = with_context(_req(("user", "new")), "Be Aria.", HISTORY[:2])
    assert [(m.role, m.content[:3]) for m in built.messages] == [
        ("system", "Be A"[:3]), ("user", "aaa"), ("assistant", "bbb"), ("user", "new")]
    own = with_context(_req(("system", "Mine."), ("user", "new")), "Be Aria.", [])
    assert [m.content for m in own.messages] == ["Mine.", "new"]
