"""Admit: a bounded number of sequences per tier (a request of 8 prompts with n=4 is 32),
none while draining; requests counted in flight for the drain.

A request that finds its tier full waits (up to `wait_s`) for a place, and places go to
whoever asked first: a session that was refused earlier keeps the time of its first refused
turn, so its retry goes before newer requests. Without that, under long overload a turn
retried after each Retry-After wins a place by chance, and can lose 60 times in a row."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kernel.errors import APIError
from serving import metrics

DRAIN_RETRY_AFTER_S = 5
OVERLOAD_RETRY_AFTER_S = 2
# How long a refused session keeps its place in line; a client that comes back later
# starts again at the back.
REMEMBERED_S = 600.0
REMEMBERED_ASKERS = 100_000


@dataclass(order=True)
class _Waiter:
    since: float
    order: int
    sequences: int = field(compare=False)
    asker: str | None = field(compare=False)
    place: asyncio.Future[None] = field(compare=False)


def _granted(waiter: _Waiter) -> bool:
    place = waiter.place
    return place.done() and not place.cancelled() and place.exception() is None


def _draining() -> APIError:
    return APIError(503, "the appliance is shutting down; retry on another node",
                    code="draining", headers={"Retry-After": str(DRAIN_RETRY_AFTER_S)})


def _overloaded(tier: str) -> APIError:
    return APIError(503, f"The {tier} tier is at capacity; retry shortly",
                    code="overloaded", headers={"Retry-After": str(OVERLOAD_RETRY_AFTER_S)})


class Admission:
    def __init__(self, tiers: Sequence[str], max_pending_per_tier: int, *,
                 wait_s: float = 0.0, max_waiting_per_tier: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.max_pending = max_pending_per_tier
        self.wait_s = wait_s
        self.max_waiting = (max_pending_per_tier if max_waiting_per_tier is None
                            else max_waiting_per_tier)
        self.pending = dict.fromkeys(tiers, 0)
        self.in_flight = 0
        self._draining = False
        self._clock = clock
        self._waiting: dict[str, list[_Waiter]] = {tier: [] for tier in tiers}
        # asker -> (first refused, last refused), least recently refused first
        self._first_refused: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._order = itertools.count()
        for tier in tiers:
            metrics.IN_FLIGHT.labels(tier)
            metrics.WAITING.labels(tier)

    @property
    def draining(self) -> bool:
        return self._draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self._draining = value
        if value:  # nobody waiting will get a place now
            for heap in self._waiting.values():
                for waiter in heap:
                    if not waiter.place.done():
                        waiter.place.set_exception(_draining())

    def check_open(self) -> None:
        if self._draining:
            raise _draining()

    def waiting(self, tier: str) -> int:
        return sum(not w.place.done() for w in self._waiting[tier])

    async def acquire(self, tier: str, sequences: int = 1, asker: str | None = None) -> None:
        """Take the tier's places for `sequences`; the caller owes `release`. Waits behind
        those who asked first, then refuses with 503 + Retry-After."""
        if sequences > self.max_pending:
            raise APIError(400, f"the request asks for {sequences} sequences (prompts x n); "
                           f"a tier takes at most {self.max_pending}", param="n",
                           code="invalid_value")
        self.check_open()
        now = self._clock()
        since = self._first_refused.get(asker, (now, now))[0] if asker is not None else now
        heap = self._waiting[tier]
        if not self._live(heap) and self._fits(tier, sequences):
            self._take(tier, sequences)
            self._forget(asker)
            return
        if self.wait_s <= 0 or not self._room(tier, since):
            self._refused(asker, since)
            raise _overloaded(tier)
        waiter = _Waiter(since, next(self._order), sequences, asker,
                         asyncio.get_running_loop().create_future())
        heapq.heappush(heap, waiter)
        metrics.WAITING.labels(tier).inc()
        self._grant(tier)  # an older asker may go before those already waiting
        try:
            async with asyncio.timeout(self.wait_s):
                await waiter.place
        except TimeoutError:
            if not _granted(waiter):  # (a place given as the time ran out is taken)
                self._refused(asker, since)
                raise _overloaded(tier) from None
        except asyncio.CancelledError:  # the client left while waiting
            if _granted(waiter):
                self.release(tier, sequences)
            raise
        finally:
            metrics.WAITING.labels(tier).dec()
            self._grant(tier)  # a timed-out head may have held back smaller requests
        self._forget(asker)

    def release(self, tier: str, sequences: int = 1) -> None:
        self.in_flight -= 1
        self.pending[tier] -= sequences
        metrics.IN_FLIGHT.labels(tier).dec()
        self._grant(tier)

    def _room(self, tier: str, since: float) -> bool:
        """A place in the waiting line: free, or the newest waiter's if this asker is older
        (that one is refused, and keeps its own time for its retry)."""
        live = [w for w in self._waiting[tier] if not w.place.done()]
        if len(live) < self.max_waiting:
            return True
        newest = max(live)
        if newest.since <= since:
            return False
        self._refused(newest.asker, newest.since)
        newest.place.set_exception(_overloaded(tier))
        return True

    def _fits(self, tier: str, sequences: int) -> bool:
        return self.pending[tier] + sequences <= self.max_pending

    def _take(self, tier: str, sequences: int) -> None:
        self.in_flight += 1
        self.pending[tier] += sequences
        metrics.IN_FLIGHT.labels(tier).inc()

    @staticmethod
    def _live(heap: list[_Waiter]) -> bool:
        while heap and heap[0].place.done():  # timed out, cancelled or drained
            heapq.heappop(heap)
        return bool(heap)

    def _grant(self, tier: str) -> None:
        """Places go in order of asking; the first waiter that does not fit holds the rest
        back, so a wide request is not passed over for ever by narrow ones."""
        heap = self._waiting[tier]
        while self._live(heap) and self._fits(tier, heap[0].sequences):
            waiter = heapq.heappop(heap)
            self._take(tier, waiter.sequences)
            waiter.place.set_result(None)

    def _refused(self, asker: str | None, since: float) -> None:
        if asker is None:
            return
        now = self._clock()
        self._first_refused[asker] = (since, now)
        self._first_refused.move_to_end(asker)
        horizon = now - REMEMBERED_S
        while self._first_refused and (len(self._first_refused) > REMEMBERED_ASKERS
                                       or next(iter(self._first_refused.values()))[1] < horizon):
            self._first_refused.popitem(last=False)

    def _forget(self, asker: str | None) -> None:
        if asker is not None:
            self._first_refused.pop(asker, None)
