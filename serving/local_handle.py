"""An engine in the router's own process, behind the surface of a Ray Serve
DeploymentHandle (`handle.options(stream=True).chat.remote(body)`, `handle.stats.remote()`),
so the request chain serves it like a tier replica. Its answers reach the router without
a Ray object per piece: the router takes the engine's output as vLLM's own API server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncGenerator
from typing import Any

from serving.model_deployment import EngineHost


class LocalStream:
    """A streamed answer; `cancel()` closes the host's generator, which aborts the engine
    request, as cancelling a Ray Serve stream does in its replica."""

    def __init__(self, agen: AsyncGenerator[Any, None]):
        self._agen = agen
        self.cancelled = False

    def __aiter__(self) -> LocalStream:
        return self

    async def __anext__(self) -> Any:
        return await self._agen.__anext__()

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        closing = asyncio.ensure_future(self._close())
        _CLOSING.add(closing)
        closing.add_done_callback(_CLOSING.discard)

    async def _close(self) -> None:
        # RuntimeError: still being read (its reader is being cancelled, and with it the
        # engine request).
        with contextlib.suppress(RuntimeError):
            await self._agen.aclose()


_CLOSING: set[asyncio.Future[None]] = set()  # held so a running close is not collected


class _Method:
    def __init__(self, handle: LocalHandle, name: str):
        self._handle, self._name = handle, name

    def remote(self, *args: Any) -> Any:
        result = getattr(self._handle.host, self._name)(*args)
        if inspect.isasyncgen(result):
            stream = LocalStream(result)
            self._handle.opened(stream)
            return stream
        return result


class LocalHandle:
    """A DeploymentHandle's surface over an `EngineHost` in this process."""

    def __init__(self, host: EngineHost):
        self.host = host

    def options(self, **_: Any) -> LocalHandle:
        return self

    def opened(self, stream: LocalStream) -> None:
        """Each stream handed out (tests keep them)."""

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(self, name)


async def start_local(host: EngineHost) -> LocalHandle:
    await host.start()
    return LocalHandle(host)
