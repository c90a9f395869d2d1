"""Sessions through the real stack: server-side history and personas."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.conftest import Appliance
from tests.integration.test_store import _export

pytestmark = pytest.mark.integration


def _say(appliance: Appliance, session: str, text: str, persona: str | None = "game_npc"
         ) -> dict:
    headers = {"x-session-id": session}
    if persona:
        headers["x-onlycs-persona"] = persona
    response = appliance.http().post("/v1/chat/completions", headers=headers, json={
        "model": "small", "max_tokens": 6, "messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200, response.text
    return response.json()


def test_three_turn_session_keeps_history_and_persona(appliance: Appliance) -> None:
    session = f"npc-{uuid.uuid4().hex[:8]}"
    turns = ["Who are you?", "Where is the village?", "Tell me more."]
    prompts = [_say(appliance, session, text)["usage"]["prompt_tokens"] for text in turns]
    # Each turn's prompt holds the earlier turns, kept on the server, not resent.
    assert prompts[0] < prompts[1] < prompts[2]
    bare = _say(appliance, f"bare-{uuid.uuid4().hex[:8]}", turns[0], persona=None)
    assert prompts[0] > bare["usage"]["prompt_tokens"]  # the persona's system prompt

    stored = _export(appliance, session)
    assert [m["role"] for m in stored] == ["system", "user", "assistant", "user", "assistant",
                                           "user", "assistant"]
    assert "Old Tomas" in stored[0]["content"]
    assert [m["content"] for m in stored if m["role"] == "user"] == turns


def test_unknown_persona_is_a_clear_400(appliance: Appliance) -> None:
    response = appliance.http().post(
        "/v1/chat/completions", headers={"x-onlycs-persona": "pirate"},
        json={"model": "small", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "persona" and "formal" in error["message"]
