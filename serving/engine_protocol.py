"""What a model deployment needs from an engine; the vLLM one is `serving.vllm_engine`.

The deployment only speaks this protocol, so the engine implementation is chosen
by import path and nothing but `serving.vllm_engine` imports vllm.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any, TypedDict


class JSONResult(TypedDict):
    """A complete (non-streamed) answer or an error, with its HTTP status."""

    status: int
    body: dict[str, Any]


# A streamed answer is a run of SSE lines (`data: {...}\n\n`); anything else is
# one JSONResult. Errors found before the first token are always a JSONResult.
EngineOutput = str | JSONResult


class ChatEngine(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    def chat(self, body: dict[str, Any]) -> AsyncIterator[EngineOutput]: ...

    @abc.abstractmethod
    def completions(self, body: dict[str, Any]) -> AsyncIterator[EngineOutput]: ...

    @abc.abstractmethod
    async def check_health(self) -> None:
        """Raise if the engine cannot serve."""

    @abc.abstractmethod
    async def stats(self) -> dict[str, Any]:
        """Live engine counters (e.g. unfinished requests)."""

    @abc.abstractmethod
    async def load_adapter(self, name: str, path: str) -> JSONResult: ...

    @abc.abstractmethod
    async def unload_adapter(self, name: str) -> JSONResult: ...

    @abc.abstractmethod
    def adapters(self) -> list[str]: ...

    @abc.abstractmethod
    def shutdown(self) -> None: ...
