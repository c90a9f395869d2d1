"""A tier replica's side of LoRA hot-swap: load what a request needs, drop what the router
dropped.

The router sends every request to a LoRA tier with the registry it holds
(`ADAPTERS_FIELD`: every loaded adapter's name and folder). A replica loads the adapter the
request names the first time it sees it, and unloads the ones the registry no longer has,
so an adapter loaded once is served by every replica of the tier: those on other nodes
and those started later, none of which the admin's load reached.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from serving.engine_protocol import ChatEngine, JSONResult

logger = logging.getLogger(__name__)

# The body field the router fills (never a client: the public API's allow-list has no
# such field); the replica takes it out before the engine sees the body.
ADAPTERS_FIELD = "onlycs_adapters"


class ReplicaAdapters:
    def __init__(self, engine: ChatEngine):
        self._engine = engine
        self._loaded: dict[str, str] = {}  # name -> folder, as this replica loaded them
        self._lock = asyncio.Lock()

    def known(self) -> dict[str, str]:
        return dict(self._loaded)

    async def load(self, name: str, path: str) -> JSONResult:
        async with self._lock:
            return await self._load(name, path)

    async def unload(self, name: str) -> JSONResult:
        async with self._lock:
            self._loaded.pop(name, None)
            return await self._engine.unload_adapter(name)

    async def _load(self, name: str, path: str) -> JSONResult:
        if self._loaded.get(name) == path:
            return {"status": 200, "body": {"status": "loaded", "name": name}}
        if name in self._loaded:
            await self._engine.unload_adapter(name)
            self._loaded.pop(name)
        result = await self._engine.load_adapter(name, path)
        if result["status"] == 200:
            self._loaded[name] = path
        return result

    async def prepare(self, body: dict[str, Any]) -> JSONResult | None:
        """Take the registry out of the body and make this replica match it; an error
        result if the adapter the request needs cannot be loaded here."""
        registry: dict[str, str] | None = body.pop(ADAPTERS_FIELD, None)
        if registry is None or registry == self._loaded:
            return None
        async with self._lock:
            for name in [n for n in self._loaded if n not in registry]:
                logger.info("adapter %s: unloaded here (the router's registry dropped it)",
                            name)
                self._loaded.pop(name)
                await self._engine.unload_adapter(name)
            wanted = body.get("model")
            if wanted in registry and self._loaded.get(wanted) != registry[wanted]:
                logger.info("adapter %s: loading here on first use (%s)", wanted,
                            registry[wanted])
                result = await self._load(wanted, registry[wanted])
                if result["status"] != 200:
                    return result
        return None
