"""Channel messages through the same pipeline as the OpenAI endpoint: persona, stored
history, routing, safety filters, admission control and per-user rate limits."""

from __future__ import annotations

import json
from typing import Any

from appliance.errors import APIError
from serving.access import Caller
from serving.channels.common import ReplyRefused
from serving.protocol import ChatRequest


class PipelineResponder:
    def __init__(self, router: Any):
        self._router = router  # serving.router_ingress.Router; typed loosely: no cycle

    async def reply(self, channel: str, session_id: str, text: str,
                    persona: str | None) -> str:
        channels = self._router.config.channels
        req = ChatRequest.model_validate({
            "model": channels.model, "max_tokens": channels.max_tokens, "user": session_id,
            "messages": [{"role": "user", "content": text}]})
        # Rate limits apply per platform user, with the configured default budget.
        caller = Caller(key_id=session_id, scope="client", persona=persona)
        try:
            full, turn = await self._router.prepare_chat(req, {}, caller)
            response = await self._router.forward("chat", full, caller, turn)
        except APIError as err:
            if err.status in (429, 503):
                raise ReplyRefused(err.message) from None
            raise
        body = json.loads(response.body)
        if response.status_code in (429, 503):
            raise ReplyRefused(f"tier answered {response.status_code}")
        if response.status_code != 200:
            raise RuntimeError(f"the pipeline answered {response.status_code}")
        return body["choices"][0]["message"]["content"] or ""
