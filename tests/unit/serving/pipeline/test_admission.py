from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from kernel.errors import APIError
from serving.pipeline.admission import Admission


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


async def _refused(admission: Admission, tier: str, sequences: int = 1,
                   asker: str | None = None) -> APIError:
    with pytest.raises(APIError) as err:
        await admission.acquire(tier, sequences, asker)
    return err.value


def test_a_full_tier_is_refused_with_retry_after_others_are_not() -> None:
    async def scenario() -> None:
        admission = Admission(("small", "kb"), max_pending_per_tier=2)
        for _ in range(2):
            await admission.acquire("kb")
        refused = await _refused(admission, "kb")
        assert refused.status == 503 and refused.code == "overloaded"
        assert refused.headers["Retry-After"]
        await admission.acquire("small")
        admission.release("kb")
        await admission.acquire("kb")
        assert admission.in_flight == 3

    _run(scenario())


def test_draining_refuses_new_work() -> None:
    admission = Admission(("small",), max_pending_per_tier=2)
    admission.check_open()
    admission.draining = True
    with pytest.raises(APIError) as err:
        admission.check_open()
    assert err.value.code == "draining" and err.value.status == 503


def test_a_tier_admits_sequences_so_one_wide_request_cannot_fill_it_unseen() -> None:
    async def scenario() -> None:
        admission = Admission(("small",), max_pending_per_tier=16)
        await admission.acquire("small", 12)
        full = await _refused(admission, "small", 8)  # 12 + 8: over, though one request
        assert full.status == 503
        never = await _refused(admission, "small", 17)  # more than the tier ever takes
        assert never.status == 400
        admission.release("small", 12)
        await admission.acquire("small", 16)
        admission.release("small", 16)
        assert admission.in_flight == 0 and admission.pending["small"] == 0

    _run(scenario())


def test_a_waiting_request_gets_the_place_that_frees() -> None:
    async def scenario() -> None:
        admission = Admission(("small",), max_pending_per_tier=1, wait_s=30)
        await admission.acquire("small")
        waiting = asyncio.create_task(admission.acquire("small"))
        await asyncio.sleep(0)
        assert not waiting.done() and admission.waiting("small") == 1
        admission.release("small")
        await asyncio.wait_for(waiting, 5)
        assert admission.in_flight == 1 and admission.waiting("small") == 0

    _run(scenario())


def test_places_go_in_order_of_asking_and_a_refused_session_keeps_its_time() -> None:
    """Under long overload a retried turn must not lose to newer requests again and again:
    a session refused earlier goes before those who first asked after it."""
    async def scenario() -> list[str]:
        clock = Clock()
        admission = Admission(("small",), max_pending_per_tier=1, wait_s=0.05,
                              max_waiting_per_tier=8, clock=clock)
        await admission.acquire("small")
        await _refused(admission, "small", asker="old")  # waited its time in line: refused
        served: list[str] = []

        async def ask(asker: str) -> None:
            await admission.acquire("small", asker=asker)
            served.append(asker)

        admission.wait_s = 30
        clock.now += 5
        newer = [asyncio.create_task(ask(f"new-{i}")) for i in range(3)]
        await asyncio.sleep(0)
        clock.now += 5
        retried = asyncio.create_task(ask("old"))  # comes back after its Retry-After
        await asyncio.sleep(0)
        for _ in range(4):
            admission.release("small")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        await asyncio.gather(*newer, retried)
        return served

    assert _run(scenario()) == ["old", "new-0", "new-1", "new-2"]


def test_a_full_line_gives_an_older_asker_the_newest_waiters_place() -> None:
    async def scenario() -> None:
        clock = Clock()
        admission = Admission(("small",), max_pending_per_tier=1, wait_s=30,
                              max_waiting_per_tier=1, clock=clock)
        await admission.acquire("small")
        admission.wait_s = 0
        await _refused(admission, "small", asker="old")
        admission.wait_s = 30
        clock.now += 1
        newest = asyncio.create_task(admission.acquire("small", asker="newer"))
        await asyncio.sleep(0)
        clock.now += 1
        # A third asker, newer than the one waiting, finds the line full.
        assert (await _refused(admission, "small", asker="newest")).code == "overloaded"
        old = asyncio.create_task(admission.acquire("small", asker="old"))
        await asyncio.sleep(0)
        with pytest.raises(APIError) as pushed_out:
            await newest
        assert pushed_out.value.code == "overloaded"
        admission.release("small")
        await asyncio.wait_for(old, 5)
        # The one pushed out keeps its own time: it takes a later newcomer's place in line.
        clock.now += 1
        later = asyncio.create_task(admission.acquire("small", asker="later"))
        await asyncio.sleep(0)
        again = asyncio.create_task(admission.acquire("small", asker="newer"))
        await asyncio.sleep(0)
        with pytest.raises(APIError):
            await later
        admission.release("small")
        await asyncio.wait_for(again, 5)

    _run(scenario())


def test_a_client_that_leaves_while_waiting_holds_no_place() -> None:
    async def scenario() -> None:
        admission = Admission(("small",), max_pending_per_tier=1, wait_s=30)
        await admission.acquire("small")
        leaving = asyncio.create_task(admission.acquire("small"))
        await asyncio.sleep(0)
        # The place is given, and the client is gone before its task runs again.
        admission.release("small")
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert admission.in_flight == 0 and admission.pending["small"] == 0
        gone = asyncio.create_task(admission.acquire("small"))
        await asyncio.sleep(0)
        assert admission.in_flight == 1
        await gone
        waiting = asyncio.create_task(admission.acquire("small"))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        admission.release("small")
        assert admission.in_flight == 0 and admission.waiting("small") == 0
        await admission.acquire("small")  # nothing left in line holds the freed place

    _run(scenario())


def test_drain_refuses_those_waiting_at_once() -> None:
    async def scenario() -> None:
        admission = Admission(("small",), max_pending_per_tier=1, wait_s=300)
        await admission.acquire("small")
        waiting = asyncio.create_task(admission.acquire("small"))
        await asyncio.sleep(0)
        admission.draining = True
        with pytest.raises(APIError) as err:
            await asyncio.wait_for(waiting, 5)
        assert err.value.code == "draining"
        assert admission.in_flight == 1

    _run(scenario())


def test_a_wide_request_first_in_line_is_not_passed_by_narrow_ones() -> None:
    async def scenario() -> None:
        admission = Admission(("small",), max_pending_per_tier=4, wait_s=30)
        await admission.acquire("small", 3)
        wide = asyncio.create_task(admission.acquire("small", 4))
        await asyncio.sleep(0)
        narrow = asyncio.create_task(admission.acquire("small", 1))  # would fit now
        await asyncio.sleep(0)
        assert not narrow.done()
        admission.release("small", 3)
        await asyncio.wait_for(wide, 5)
        assert not narrow.done()
        admission.release("small", 4)
        await asyncio.wait_for(narrow, 5)

    _run(scenario())
