"""Coalesce a tier's streamed output into fewer Ray objects between its replica and the
router: every item Ray Serve streams is one object through Ray's core worker, which costs
more CPU than the token it carries.

The first item always goes alone and at once (TTFT is untouched); after it, whatever
arrived while the last batch was on its way goes together, and a batch is sent at most
every `interval_s`, so no item waits longer than that. A stream slower than the interval
(one request on an idle engine) passes through item by item, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


async def coalesce(source: AsyncIterator[T], interval_s: float) -> AsyncIterator[list[T]]:
    """Lists of `source`'s items, in order; none is lost, none waits over `interval_s`.
    `interval_s <= 0`: one item per list. Closing the result closes `source` (a client gone
    aborts the engine request), and an error in `source` is raised after the items before it."""
    if interval_s <= 0:
        async for item in source:
            yield [item]
        return
    queue: asyncio.Queue[object] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def pump() -> None:
        try:
            async for item in source:
                queue.put_nowait(item)
        except Exception as exc:  # handed to the consumer, after the items before it
            queue.put_nowait(_Raised(exc))
            return
        queue.put_nowait(_END)

    reader = asyncio.create_task(pump())
    try:
        sent_at = -interval_s
        while True:
            batch = [await queue.get()]
            wait = sent_at + interval_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            while not queue.empty():
                batch.append(queue.get_nowait())
            items, ended = _until_end(batch)
            if items:
                sent_at = loop.time()
                yield items
            if ended is not None:
                if isinstance(ended, _Raised):
                    raise ended.exc
                return
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


class _Raised:
    def __init__(self, exc: Exception):
        self.exc = exc


def _until_end(batch: list[object]) -> tuple[list, object | None]:
    for index, item in enumerate(batch):
        if item is _END or isinstance(item, _Raised):
            return batch[:index], item
    return batch, None
