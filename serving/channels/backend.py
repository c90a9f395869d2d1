"""A Responder that asks any OpenAI-compatible endpoint: the channels on their own, in
front of another backend (or of an OnlyCS appliance on another box)."""

from __future__ import annotations

import httpx

from onlycs._wire import tls_verify
from serving.channels.common import ReplyRefused

PERSONA_HEADER = "x-onlycs-persona"
SESSION_HEADER = "x-session-id"


class OpenAIBackend:
    def __init__(self, base_url: str, api_key: str | None, model: str, max_tokens: int,
                 timeout_s: float = 120.0, verify: bool | str = True):
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                         timeout=timeout_s,
                                         verify=tls_verify(verify))
        self._model = model
        self._max_tokens = max_tokens

    async def reply(self, channel: str, session_id: str, text: str,
                    persona: str | None) -> str:
        headers = {SESSION_HEADER: session_id}
        if persona:
            headers[PERSONA_HEADER] = persona
        response = await self._client.post("/v1/chat/completions", headers=headers, json={
            "model": self._model, "max_tokens": self._max_tokens, "user": session_id,
            "messages": [{"role": "user", "content": text}]})
        if response.status_code in (429, 503):
            raise ReplyRefused(f"backend answered {response.status_code}")
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"] or ""

    async def aclose(self) -> None:
        await self._client.aclose()
