"""Sessions through the real stack: server-side history and personas."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.conftest import Appliance, create_key
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


def test_a_session_id_names_a_session_of_the_calling_key_only(appliance: Appliance) -> None:
    """Key B naming key A's session id gets none of A's history and adds nothing to it."""
    session = f"shared-{uuid.uuid4().hex[:8]}"
    secret = "My address is 5 Elm Street."
    _say(appliance, session, secret, persona=None)
    other_key = create_key(appliance.config_path, f"tenant-b-{uuid.uuid4().hex[:6]}")
    response = appliance.http(other_key).post(
        "/v1/chat/completions", headers={"x-session-id": session},
        json={"model": "small", "max_tokens": 6,
              "messages": [{"role": "user", "content": "What is my address?"}]})
    assert response.status_code == 200 and response.headers["x-onlycs-session"] == session
    # B's prompt holds only B's message: A's turn was not put in front of it.
    alone = _say(appliance, f"alone-{uuid.uuid4().hex[:8]}", "What is my address?",
                 persona=None)
    assert response.json()["usage"]["prompt_tokens"] == alone["usage"]["prompt_tokens"]
    ambiguous = appliance.onlycs("conversations", "export", "--session", session)
    assert ambiguous.returncode == 2 and "--key" in ambiguous.stderr
    mine = appliance.onlycs("conversations", "export", "--session", session, "--key", "tests")
    assert mine.returncode == 0, mine.stderr
    contents = [m["content"] for m in json.loads(mine.stdout)["messages"]]
    assert contents[0] == secret and "What is my address?" not in contents
