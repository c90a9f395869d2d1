"""The appliance's own polite answer to a blocked message, in OpenAI's response shapes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

REFUSAL = ("I'm sorry, I can't help with that message. Please rephrase it and I'll be glad "
           "to help.")
MODEL = "onlycs-safety"


def refusal_body(req: Any, text: str) -> dict[str, Any]:
    created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
    if hasattr(req, "messages"):
        choice = {"index": 0, "finish_reason": "content_filter",
                  "message": {"role": "assistant", "content": text}}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "finish_reason": "content_filter", "text": text}
        kind = "text_completion"
    return {"id": rid, "object": kind, "created": created, "model": MODEL, "choices": [choice],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


async def refusal_stream(req: Any, text: str) -> AsyncIterator[str]:
    body = refusal_body(req, text)
    chat = body["object"] == "chat.completion"
    delta = {"role": "assistant", "content": text} if chat else None
    choice = ({"index": 0, "delta": delta, "finish_reason": "content_filter"} if chat
              else {"index": 0, "text": text, "finish_reason": "content_filter"})
    chunk = {"id": body["id"], "object": "chat.completion.chunk" if chat else "text_completion",
             "created": body["created"], "model": MODEL, "choices": [choice]}
    yield f"data: {json.dumps(chunk)}\n\n"
    options = getattr(req, "stream_options", None)
    if options is not None and options.include_usage:
        yield f"data: {json.dumps(chunk | {'choices': [], 'usage': body['usage']})}\n\n"
    yield "data: [DONE]\n\n"
