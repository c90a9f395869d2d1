"""What the sync and async clients share: request bodies, headers, the retry policy and
the parsing of answers and SSE streams."""

from __future__ import annotations

import json
import re
import ssl
from dataclasses import dataclass
from typing import Any

from onlycs.errors import OnlyCSError, error_for

SESSION_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
PERSONA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RETRYABLE = (429, 503)
CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Settings:
    model: str = "auto"
    max_tokens: int | None = None
    persona: str | None = None
    system_prompt: str | None = None
    max_retries: int = 3
    max_retry_wait_s: float = 30.0


@dataclass(frozen=True)
class Reply:
    """One answer: its text, the tier and rule that served it, why it stopped."""

    text: str
    route: str | None
    finish_reason: str | None
    session_id: str | None


def tls_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """True, False, or a CA file to trust (e.g. the appliance's own CA)."""
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


def personality(settings: Settings, name_or_prompt: str) -> Settings:
    """A persona name (one word, configured on the appliance) or a system prompt of your
    own (anything with a space in it)."""
    from dataclasses import replace

    text = name_or_prompt.strip()
    if not text:
        raise ValueError("a personality needs a persona name or a prompt")
    if PERSONA_NAME.match(text):
        return replace(settings, persona=text, system_prompt=None)
    return replace(settings, persona=None, system_prompt=text)


def chat_request(settings: Settings, user_id: str, text: str, stream: bool
                 ) -> tuple[dict[str, str], dict[str, Any]]:
    if not SESSION_ID.match(user_id):
        raise ValueError("user_id must be 1-128 characters of letters, digits and ._:@-")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    headers = {"x-session-id": user_id}
    if settings.persona:
        headers["x-onlycs-persona"] = settings.persona
    messages = ([{"role": "system", "content": settings.system_prompt}]
                if settings.system_prompt else [])
    messages.append({"role": "user", "content": text})
    body: dict[str, Any] = {"model": settings.model, "messages": messages, "stream": stream}
    if settings.max_tokens is not None:
        body["max_tokens"] = settings.max_tokens
    return headers, body


def retry_after(headers: Any) -> float | None:
    try:
        return max(0.0, float(headers.get("retry-after")))
    except (TypeError, ValueError):
        return None


def retry_wait(settings: Settings, attempt: int, status: int, headers: Any) -> float | None:
    """Seconds to wait before the next attempt, or None when this one is final."""
    if status not in RETRYABLE or attempt >= settings.max_retries:
        return None
    wait = retry_after(headers)
    wait = wait if wait is not None else min(0.5 * 2**attempt, 8.0)
    return wait if wait <= settings.max_retry_wait_s else None


def raise_for(status: int, headers: Any, raw: bytes) -> None:
    if status < 400:
        return
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace")
    raise error_for(status, body, retry_after(headers))


def reply_of(headers: Any, body: dict[str, Any]) -> Reply:
    choice = body["choices"][0]
    return Reply(choice["message"].get("content") or "", headers.get("x-onlycs-route"),
                 choice.get("finish_reason"), headers.get("x-onlycs-session"))


def sse_text(line: str) -> str | None:
    """The text delta of one SSE line; None for lines without text. An error event in
    the stream raises."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        event = json.loads(data)
    except ValueError:
        raise OnlyCSError(f"malformed stream event: {data[:200]}") from None
    if "error" in event:
        raise error_for(int(event["error"].get("code") or 500)
                        if str(event["error"].get("code", "")).isdigit() else 500,
                        event, None)
    choices = event.get("choices") or []
    if not choices:
        return None
    return (choices[0].get("delta") or {}).get("content") or None
