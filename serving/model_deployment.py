"""One engine and what serves it: the `small` or the `large` tier (or both, when one shares
the other's engine). `EngineHost` runs it in whatever process holds it: the router's own
(`placement = "router"`, through `serving.local_handle`) or a Ray Serve deployment of its
own (`ModelServer`), which Ray Serve scales across cores, GPUs and nodes.

The engine class is given by import path so this module never imports vllm itself.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

from serving.adapter_sync import ReplicaAdapters
from serving.engine_protocol import ChatEngine, EngineOutput
from serving.stream_batch import coalesce

logger = logging.getLogger(__name__)

DEFAULT_ENGINE = "serving.vllm_engine:VLLMChatEngine"
# The first item of every answer names the node that made it (the route header says it).
NODE_FIELD = "node"


def node_address() -> str:
    """The Ray node's address: unique in a cluster, as the inventory names the nodes
    (host names need not be: cloned servers often share one)."""
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray (tests of the body alone)
        return socket.gethostname()


def load_engine_class(path: str) -> type[ChatEngine]:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class EngineHost:
    """One engine's answers, adapters, health and shutdown; `start()` before use."""

    placement = "router"  # held by the router replica (`serving.local_handle`)

    def __init__(self, tier: str, engine_options: dict[str, Any],
                 engine_cls: str = DEFAULT_ENGINE, stream_batch_s: float = 0.0,
                 guests: tuple[str, ...] = ()):
        self.tier = tier
        # Tiers that run on this engine (`share_engine_with`): their requests name them,
        # the engine serves them as its own, and the answers carry their name again.
        self._guests = frozenset(guests)
        self._own_name = re.compile(r'"model":\s?' + re.escape(json.dumps(tier)))
        self._stream_batch_s = stream_batch_s
        self._engine = load_engine_class(engine_cls)(engine_options)
        self._adapters = ReplicaAdapters(self._engine)
        self.node = node_address()

    async def start(self) -> None:
        logger.info("tier %s: starting engine", self.tier)
        await self._engine.start()
        logger.info("tier %s: engine ready on %s", self.tier, self.node)

    # Each yield is one Ray object to the router: a list of outputs (`coalesce`).
    async def chat(self, body: dict[str, Any]) -> AsyncIterator[list[EngineOutput | dict]]:
        async for batch in coalesce(self._answer(self._engine.chat, body), self._stream_batch_s):
            yield batch

    async def completions(self, body: dict[str, Any]
                          ) -> AsyncIterator[list[EngineOutput | dict]]:
        async for batch in coalesce(self._answer(self._engine.completions, body),
                                    self._stream_batch_s):
            yield batch

    async def _answer(self, method: Any, body: dict[str, Any]
                      ) -> AsyncIterator[EngineOutput | dict]:
        yield {NODE_FIELD: self.node}
        guest = body.get("model")
        if guest in self._guests:
            body = {**body, "model": self.tier}
        refused = await self._adapters.prepare(body)
        if refused is not None:
            yield refused
            return
        if guest not in self._guests:
            async for out in method(body):
                yield out
            return
        own, theirs = self._own_name, f'"model":"{guest}"'
        async for out in method(body):
            if isinstance(out, str):
                yield own.sub(theirs, out, count=1)
            else:
                if out["body"].get("model") == self.tier:
                    out["body"]["model"] = guest
                yield out

    async def stats(self) -> dict[str, Any]:
        return {"tier": self.tier, "node": self.node, "placement": self.placement,
                **await self._engine.stats(),
                "adapters": self._engine.adapters()}

    async def load_adapter(self, name: str, path: str) -> dict[str, Any]:
        return await self._adapters.load(name, path)

    async def unload_adapter(self, name: str) -> dict[str, Any]:
        return await self._adapters.unload(name)

    async def check_health(self) -> None:
        # Ray Serve calls this periodically and restarts a replica that raises.
        await self._engine.check_health()

    def shutdown(self) -> None:
        """Take the engine's EngineCore and worker processes down."""
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.shutdown()


class ModelServer(EngineHost):
    """Deployment body; `serving.app` wraps it with `serve.deployment` per tier."""

    placement = "replica"

    async def __init__(self, tier: str, engine_options: dict[str, Any],  # type: ignore[misc]
                       engine_cls: str = DEFAULT_ENGINE, stream_batch_s: float = 0.0,
                       guests: tuple[str, ...] = ()):
        super().__init__(tier, engine_options, engine_cls, stream_batch_s, guests)
        await self.start()

    def __del__(self) -> None:
        # Ray Serve runs __del__ on replica shutdown: the engine goes with the replica.
        self.shutdown()
