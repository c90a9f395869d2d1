"""The router's own engine behind a handle's surface: a cancelled stream closes the
engine's generator (which aborts the engine request), like Ray Serve's cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from serving.local_handle import LocalStream


async def test_cancel_closes_the_engines_generator_and_nothing_more_is_read() -> None:
    events: list[str] = []

    async def answer() -> AsyncGenerator[str, None]:
        try:
            for i in range(1000):
                events.append(f"sent {i}")
                yield f"piece {i}"
        finally:
            events.append("closed")

    stream = LocalStream(answer())
    assert await stream.__anext__() == "piece 0"
    stream.cancel()
    stream.cancel()  # twice is once
    await asyncio.sleep(0.01)
    assert events == ["sent 0", "closed"]
    assert stream.cancelled


async def test_a_stream_read_to_its_end_gives_every_piece() -> None:
    async def answer() -> AsyncGenerator[int, None]:
        for i in range(5):
            yield i

    assert [piece async for piece in LocalStream(answer())] == [0, 1, 2, 3, 4]
