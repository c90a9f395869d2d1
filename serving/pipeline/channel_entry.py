"""A chat channel's way into the chain: the same stages as the OpenAI routes (persona,
stored history, routing, safety filters, admission, per-user rate limits), answered with a
typed reply."""

from __future__ import annotations

from kernel.errors import APIError
from serving.access import Caller
from serving.channels.common import ReplyRefused
from serving.pipeline.chain import RequestPipeline
from serving.pipeline.outcome import Reply
from serving.protocol import ChatRequest


class PipelineResponder:
    def __init__(self, pipeline: RequestPipeline):
        self.pipeline = pipeline

    async def reply(self, channel: str, session_id: str, text: str,
                    persona: str | None) -> str:
        channels = self.pipeline.config.channels
        req = ChatRequest.model_validate({
            "model": channels.model, "max_tokens": channels.max_tokens, "user": session_id,
            "messages": [{"role": "user", "content": text}]})
        # Rate limits apply per platform user, with the configured default budget; the
        # sessions belong to the channel.
        caller = Caller(key_id=session_id, scope="client", persona=persona,
                        owner=f"channel.{channel}")
        try:
            outcome = await self.pipeline.chat(req, {}, caller)
        except APIError as err:
            if err.status in (429, 503):
                raise ReplyRefused(err.message) from None
            raise
        assert isinstance(outcome, Reply)  # a channel request never streams
        if outcome.status in (429, 503):
            raise ReplyRefused(f"tier answered {outcome.status}")
        if outcome.status != 200:
            raise RuntimeError(f"the pipeline answered {outcome.status}")
        return outcome.text()
