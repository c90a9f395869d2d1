"""The tier replica's stream coalescing: order, nothing lost, the first item at once, a
batch at most per interval, errors and a client gone reach the source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from serving.stream_batch import coalesce


async def paced(items: list[str], gap_s: float, log: list[str]) -> AsyncIterator[str]:
    try:
        for item in items:
            yield item
            await asyncio.sleep(gap_s)
    finally:
        log.append("closed")


async def collect(source: AsyncIterator[str], interval_s: float) -> list[tuple[float, list]]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    return [(loop.time() - start, batch) async for batch in coalesce(source, interval_s)]


async def test_a_fast_stream_is_batched_in_order_and_the_first_item_goes_alone() -> None:
    log: list[str] = []
    items = [f"t{i}" for i in range(40)]
    batches = await collect(paced(items, 0, log), 0.05)
    assert [item for _, batch in batches for item in batch] == items
    assert batches[0][1] == ["t0"]
    assert len(batches) <= 3  # the rest arrive within the first 50 ms
    assert log == ["closed"]


async def test_no_interval_sends_one_item_per_batch() -> None:
    batches = await collect(paced(["a", "b", "c"], 0, []), 0)
    assert [batch for _, batch in batches] == [["a"], ["b"], ["c"]]


async def test_a_stream_slower_than_the_interval_passes_item_by_item() -> None:
    batches = await collect(paced(["a", "b", "c", "d"], 0.05, []), 0.01)
    assert [batch for _, batch in batches] == [["a"], ["b"], ["c"], ["d"]]


async def test_an_error_in_the_source_comes_after_the_items_before_it() -> None:
    async def failing() -> AsyncIterator[str]:
        yield "a"
        yield "b"
        raise RuntimeError("engine died")

    seen: list[str] = []
    with pytest.raises(RuntimeError, match="engine died"):
        async for batch in coalesce(failing(), 0.05):
            seen.extend(batch)
    assert seen == ["a", "b"]


async def test_closing_the_batches_closes_the_source() -> None:
    log: list[str] = []
    batches = coalesce(paced([f"t{i}" for i in range(1000)], 0.001, log), 0.01)
    assert await batches.__anext__() == ["t0"]
    await batches.__anext__()
    await batches.aclose()
    assert log == ["closed"]
