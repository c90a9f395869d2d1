"""Tier handles for unit tests of the request chain, without Ray or vLLM: the real
`EngineHost` (what a tier replica and the router's own engine run) with an injected engine
built on the real `ChatEngine` base class, behind the appliance's in-process handle."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from serving.engine_protocol import ChatEngine, EngineOutput, JSONResult
from serving.local_handle import LocalHandle as ServingLocalHandle
from serving.local_handle import LocalStream
from serving.model_deployment import EngineHost

ENGINE = "tests.fake_tiers:ScriptedEngine"


class ScriptedEngine(ChatEngine):
    """Answers with the one choice of the body's `structured_outputs` (what a real engine
    is forced to write by `{"choice": [text]}`), else a fixed text naming the model,
    streamed one word per SSE event; keeps every body it got."""

    def __init__(self, options: dict[str, Any]):
        self.options = options
        self.bodies: list[dict[str, Any]] = []
        self.loaded: dict[str, str] = {}

    async def start(self) -> None:
        return None

    def _reply(self, body: dict[str, Any]) -> str:
        choices = (body.get("structured_outputs") or {}).get("choice") or []
        return choices[0] if choices else f"answer from {body['model']}"

    async def chat(self, body: dict[str, Any]) -> AsyncIterator[EngineOutput]:
        self.bodies.append(body)
        text = self._reply(body)
        if not body.get("stream"):
            yield JSONResult(status=200, body={
                "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}]})
            return
        words = text.split(" ")
        # Usage as vLLM reports it: at the end with include_usage, and on every event too
        # with continuous_usage_stats (a word is a token here).
        options = body.get("stream_options") or {}
        prompt = sum(len(str(m.get("content")).split()) for m in body.get("messages", []))
        for i, word in enumerate(words):
            last = i == len(words) - 1
            delta = {"content": word + ("" if last else " ")}
            chunk: dict[str, Any] = {
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "model": body["model"],
                "choices": [{"index": 0, "delta": delta,
                             "finish_reason": "stop" if last else None}]}
            if options.get("include_usage") and options.get("continuous_usage_stats"):
                chunk["usage"] = _usage(prompt, i + 1)
            yield f"data: {json.dumps(chunk)}\n\n"
        if options.get("include_usage"):
            last_event = {"id": "chatcmpl-1", "choices": [], "usage": _usage(prompt, len(words))}
            yield f"data: {json.dumps(last_event)}\n\n"
        yield "data: [DONE]\n\n"

    async def completions(self, body: dict[str, Any]) -> AsyncIterator[EngineOutput]:
        self.bodies.append(body)
        yield JSONResult(status=200, body={
            "object": "text_completion", "model": body["model"],
            "choices": [{"index": 0, "text": self._reply(body), "finish_reason": "stop"}]})

    async def check_health(self) -> None:
        return None

    async def stats(self) -> dict[str, Any]:
        return {"unfinished_requests": 0, "aborted_requests": 0, "bodies": len(self.bodies),
                "pid": os.getpid()}

    async def load_adapter(self, name: str, path: str) -> JSONResult:
        self.loaded[name] = path
        return JSONResult(status=200, body={})

    async def unload_adapter(self, name: str) -> JSONResult:
        self.loaded.pop(name, None)
        return JSONResult(status=200, body={})

    def adapters(self) -> list[str]:
        return sorted(self.loaded)

    def shutdown(self) -> None:
        return None


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


class LocalHandle(ServingLocalHandle):
    """The appliance's in-process handle, keeping every stream it handed out."""

    def __init__(self, server: EngineHost):
        super().__init__(server)
        self.streams: list[LocalStream] = []

    def opened(self, stream: LocalStream) -> None:
        self.streams.append(stream)

    @property
    def server(self) -> EngineHost:
        return self.host

    @property
    def engine(self) -> ScriptedEngine:
        return self.host._engine  # type: ignore[return-value]


async def local_tier(name: str, guests: tuple[str, ...] = ()) -> LocalHandle:
    """`guests`: tiers that share this one's engine (`share_engine_with`)."""
    host = EngineHost(name, {"model": name}, ENGINE, 0.0, guests)
    await host.start()
    return LocalHandle(host)
