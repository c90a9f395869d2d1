"""Dispatch: send a body to a tier replica and read its first output. Handles are built
once per tier (streaming options included), never per request."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kernel.errors import APIError
from serving.model_deployment import NODE_FIELD

READY_TIMEOUT_S = 5.0
APP_NAME = "onlycs"  # the Ray Serve application the launcher runs


class TierHandle(Protocol):
    """What the chain needs of a tier: Ray Serve's DeploymentHandle, or a test's fake."""

    def options(self, **kwargs: Any) -> Any: ...


@dataclass
class Opened:
    """A tier's answer so far: a whole JSON result, or the first SSE event and the rest."""

    result: dict[str, Any] | None
    first: str | None
    stream: Any  # async iterator of SSE events with .cancel()
    node: str | None = None  # the host of the replica that answered


class TierDispatcher:
    def __init__(self, handles: Mapping[str, Any]):
        self.handles = dict(handles)
        self._streaming = {tier: h.options(stream=True) for tier, h in self.handles.items()}

    async def open(self, tier: str, method: str, body: dict[str, Any]) -> Opened:
        stream = ItemStream(getattr(self._streaming[tier], method).remote(body))
        node = None
        try:
            first = await stream.__anext__()
            if isinstance(first, dict) and NODE_FIELD in first:
                node = first[NODE_FIELD]
                first = await stream.__anext__()
        except StopAsyncIteration:
            raise APIError(500, "the model engine returned nothing") from None
        if isinstance(first, dict):
            stream.cancel()
            return Opened(first, None, None, node)
        return Opened(None, first, stream, node)

    async def probe(self, tier: str) -> dict[str, Any]:
        """One tier's readiness: any failure means "not ready", never a 500."""
        try:
            handle = self.handles[tier]
            await asyncio.wait_for(handle.check_health.remote(), READY_TIMEOUT_S)
            stats = await asyncio.wait_for(handle.stats.remote(), READY_TIMEOUT_S)
            return {"ready": True, **stats}
        except Exception as exc:
            return {"ready": False, "error": type(exc).__name__}

    async def readiness(self) -> dict[str, dict[str, Any]]:
        results = await asyncio.gather(*(self.probe(t) for t in self.handles))
        return dict(zip(self.handles, results, strict=True))


class ItemStream:
    """A tier's items one at a time: its replica sends them in batches (`coalesce`), a
    test's fake tier one by one. `cancel()` reaches the replica, which aborts the request."""

    def __init__(self, batches: Any):
        self._batches = batches
        self._pending: deque[Any] = deque()

    def __aiter__(self) -> ItemStream:
        return self

    async def __anext__(self) -> Any:
        while not self._pending:
            batch = await self._batches.__anext__()
            self._pending.extend(batch if isinstance(batch, list) else (batch,))
        return self._pending.popleft()

    def cancel(self) -> None:
        self._batches.cancel()


def running_replicas(app: str) -> dict[str, int]:
    """Each deployment's replicas in the RUNNING state, from the Serve controller; empty
    outside Ray Serve (the unit tests' fake tiers). Blocking: call it in a thread."""
    try:
        import ray
        from ray import serve

        if not ray.is_initialized():  # serve.status() would start a Ray of its own
            return {}
        deployments = serve.status().applications[app].deployments
    except Exception:
        return {}
    return {name: int(d.replica_states.get("RUNNING", 0)) for name, d in deployments.items()}


async def prepend(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    yield first
    async for item in rest:
        yield item
