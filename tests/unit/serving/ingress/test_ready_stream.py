"""An answer the appliance wrote itself streams in two writes (every event, then `[DONE]`
once the turn is stored) and reads, event by event, like any other stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving.ingress.routes_openai import ReadyEventStream
from serving.protocol import ChatRequest
from serving.refusal import refusal_stream


def _request() -> ChatRequest:
    return ChatRequest.model_validate({"model": "auto", "stream": True,
                                       "stream_options": {"include_usage": True},
                                       "messages": [{"role": "user", "content": "hi"}]})


async def test_every_event_but_done_is_sent_at_once_and_done_ends_the_body() -> None:
    stored = asyncio.Event()

    async def events() -> AsyncIterator[str]:
        async for chunk in refusal_stream(_request(), "The Orbit ceiling light uses 24 W.",
                                          finish_reason="stop", usage={"prompt_tokens": 1}):
            if chunk.startswith("data: [DONE]"):
                await stored.wait()  # the store, which the stream waits on before [DONE]
            yield chunk

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)
        if len(sent) == 2:  # the text is out while the store still writes
            stored.set()

    async def receive() -> dict:
        raise AssertionError("a ready stream does not listen for the client")

    response = ReadyEventStream(events(), media_type="text/event-stream")
    await asyncio.wait_for(response({"type": "http"}, receive, send), timeout=30)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body",
                                        "http.response.body"]
    assert [m.get("more_body") for m in sent[1:]] == [True, False]
    assert sent[1]["body"].count(b"data: {") == 6  # role, 3 pieces, finish, usage
    assert sent[2]["body"] == b"data: [DONE]\n\n"


def test_a_client_reads_the_ready_stream_event_by_event() -> None:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat() -> ReadyEventStream:
        return ReadyEventStream(refusal_stream(_request(), "Halo 落地灯 保修 3 年。",
                                               finish_reason="stop"),
                                media_type="text/event-stream", headers={"x-a": "b"})

    with TestClient(app) as client, client.stream("POST", "/v1/chat/completions") as got:
        assert got.headers["content-type"].startswith("text/event-stream")
        assert got.headers["x-a"] == "b"
        lines = [line for line in got.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Halo 落地灯 保修 3 年。"
    assert chunks[-1]["usage"]["completion_tokens"] >= 0  # include_usage: the last event


async def test_a_stream_that_ends_without_done_still_ends_the_body() -> None:
    async def events() -> AsyncIterator[str]:
        yield "data: {}\n\n"
        yield 'data: {"error": {"code": "store_busy"}}\n\n'  # the store refused the turn

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await ReadyEventStream(events(), media_type="text/event-stream")({"type": "http"}, None,
                                                                      send)
    assert [m.get("more_body") for m in sent[1:]] == [True, True, False]
    assert b"store_busy" in sent[2]["body"] and sent[3]["body"] == b""
