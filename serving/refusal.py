"""The appliance's own polite answer to a blocked message, in OpenAI's response shapes."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

REFUSAL = ("I'm sorry, I can't help with that message. Please rephrase it and I'll be glad "
           "to help.")
MODEL = "onlycs-safety"


def refusal_body(req: Any, text: str, *, model: str = MODEL,
                 finish_reason: str = "content_filter",
                 usage: dict[str, int] | None = None) -> dict[str, Any]:
    created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
    if hasattr(req, "messages"):
        choice = {"index": 0, "finish_reason": finish_reason,
                  "message": {"role": "assistant", "content": text}}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "finish_reason": finish_reason, "text": text}
        kind = "text_completion"
    return {"id": rid, "object": kind, "created": created, "model": model, "choices": [choice],
            "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


def pieces_of(text: str, words: int = 3, chars: int = 8) -> list[str]:
    """A few words (or, without spaces, a few characters) per chunk, as an engine streams."""
    if " " not in text.strip():
        return [text[i:i + chars] for i in range(0, len(text), chars)] or [text]
    tokens = re.findall(r"\S+\s*", text)
    return ["".join(tokens[i:i + words]) for i in range(0, len(tokens), words)] or [text]


async def refusal_stream(req: Any, text: str, *, model: str = MODEL,
                         finish_reason: str = "content_filter",
                         usage: dict[str, int] | None = None) -> AsyncIterator[str]:
    """The whole text as SSE: a role event, the content in pieces, then the finish reason,
    the way an engine's stream ends. Every event before `[DONE]` comes in one chunk (the
    text is all there: one write, not one per piece); `[DONE]` comes alone, so the caller
    can hold it back until the turn is stored."""
    body = refusal_body(req, text, model=model, finish_reason=finish_reason, usage=usage)
    chat = body["object"] == "chat.completion"
    base = {"id": body["id"], "object": "chat.completion.chunk" if chat else "text_completion",
            "created": body["created"], "model": model}
    events = []
    if chat:
        pieces = [{"role": "assistant", "content": ""}, *({"content": p} for p in pieces_of(text))]
        for delta in pieces:
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            event = json.dumps(base | {"choices": [choice]}, ensure_ascii=False)
            events.append(f"data: {event}\n\n")
        last = {"index": 0, "delta": {}, "finish_reason": finish_reason}
    else:
        last = {"index": 0, "text": text, "finish_reason": finish_reason}
    chunk = base | {"choices": [last]}
    events.append(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n")
    options = getattr(req, "stream_options", None)
    if options is not None and options.include_usage:
        events.append(f"data: {json.dumps(chunk | {'choices': [], 'usage': body['usage']})}\n\n")
    yield "".join(events)
    yield "data: [DONE]\n\n"
