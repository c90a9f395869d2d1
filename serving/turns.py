"""What of a chat exchange goes into the conversation store, and under which session.

A turn is the request's new user message (plus its system/persona text when the
session is new) and the assistant's answer (choice 0), streamed or not.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from appliance.conversations import Message
from appliance.errors import APIError
from serving.protocol import ChatRequest

SESSION_HEADER = "x-session-id"
SESSION_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


def session_id_for(headers: Mapping[str, str], req: ChatRequest) -> str:
    """From the `x-session-id` header, else the OpenAI `user` field, else a new one."""
    given = headers.get(SESSION_HEADER) or req.user
    if given is None:
        return uuid.uuid4().hex
    if not SESSION_ID.match(given):
        raise APIError(400, "session id must be 1-128 characters of letters, digits and "
                       "._:@-", param=SESSION_HEADER, code="invalid_session_id")
    return given


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(str(p.get("text", "")) for p in content or [] if isinstance(p, dict))


def request_messages(req: ChatRequest, *, new_session: bool) -> list[Message]:
    wanted = []
    if new_session:
        wanted += [Message(m.role, _text(m.content)) for m in req.messages
                   if m.role in ("system", "developer")]
    wanted.append(Message("user", req.last_user_text()))
    return wanted


def reply_text(body: Mapping[str, Any]) -> str:
    choices = body.get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content") or ""


class StreamedReply:
    """Collects choice 0's text from the SSE chunks as they pass through."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def feed(self, chunk: str) -> None:
        for line in chunk.splitlines():
            if not line.startswith("data: {"):
                continue
            for choice in json.loads(line[6:]).get("choices") or []:
                if choice.get("index", 0) == 0:
                    self._parts.append((choice.get("delta") or {}).get("content") or "")

    @property
    def text(self) -> str:
        return "".join(self._parts)
