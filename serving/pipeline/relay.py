"""Relay and filter: pass a tier's SSE events on through the output filter; store the turn
before `[DONE]`; a client gone mid-stream cancels the engine request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kernel.errors import APIError
from serving.pipeline.dispatch import prepend
from serving.safety import FactCheck, OutputFilter, SSEFilter

SaveTurn = Callable[[str], Awaitable[None]]


async def relay(first: str, stream: Any, output_filter: OutputFilter,
                save: SaveTurn | None, on_end: Callable[[], None],
                facts: FactCheck | None = None, choices: int = 1,
                usage_wanted: bool = False, usage_held: bool = False) -> AsyncIterator[str]:
    """`save` (None: no store) gets choice 0's text as it went out, before `[DONE]`. A
    stream that carried an error event (the engine failed mid-answer) is not stored: the
    client saw no complete answer, so none is acknowledged. `facts`: the fact guard of an
    answer that is not grounded (see `FactCheck`). Once the guard has stopped the answer
    (every one of its `choices` ended), the engine request is cancelled and the stream
    ends at once. A client that asked for the usage event gets it first, for the tokens
    generated until then: `usage_held` says the engine put usage on every event (the
    filter takes it off); without it, only the engine's whole stream carries usage, so
    that one runs on."""
    finished = False
    failed = False
    sse_filter = SSEFilter(output_filter, facts, choices, hold_usage=usage_held)
    try:
        async for raw in prepend(first, stream):
            chunk = sse_filter.rewrite(raw)
            if not chunk:
                continue
            failed = failed or is_error_event(chunk)
            usage = (sse_filter.usage_event() if usage_wanted and sse_filter.cut_short
                     else None)
            if sse_filter.cut_short and not chunk.startswith("data: [DONE]") \
                    and (usage is not None or not usage_wanted):
                yield chunk
                finished = True
                stream.cancel()  # nothing more the engine writes would be sent
                if usage is not None:
                    yield usage
                chunk = "data: [DONE]\n\n"
            if save is not None and not failed and chunk.startswith("data: [DONE]"):
                try:
                    await save(sse_filter.sent_text)
                except APIError as err:
                    yield f"data: {json.dumps(err.body())}\n\n"
                    finished = True
                    return
            yield chunk
            if finished:
                return
        finished = True
    finally:
        on_end()
        if not finished:
            stream.cancel()


def is_error_event(chunk: str) -> bool:
    if not chunk.startswith('data: {"error"'):
        return False
    try:
        return "error" in json.loads(chunk[6:])
    except ValueError:
        return False


async def stored_stream(events: AsyncIterator[str], saving: Awaitable[None]
                        ) -> AsyncIterator[str]:
    """An answer the appliance wrote itself, streamed while its turn is stored: the text
    goes out at once, and `[DONE]` only once the store has it (acknowledged means stored)."""
    task = asyncio.ensure_future(saving)
    try:
        async for chunk in events:
            if chunk.startswith("data: [DONE]"):
                try:
                    await task
                except APIError as err:
                    yield f"data: {json.dumps(err.body())}\n\n"
                    return
            yield chunk
    finally:
        if not task.done():  # the client left: the turn is still written whole
            _WRITING.add(task)
            task.add_done_callback(_written)


_WRITING: set[asyncio.Future[None]] = set()  # held here so a running write is not collected


def _written(task: asyncio.Future[None]) -> None:
    _WRITING.discard(task)
    if not task.cancelled():
        task.exception()  # logged by the store stage; retrieved so asyncio does not warn
