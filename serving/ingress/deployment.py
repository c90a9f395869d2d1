"""The ingress as a Ray Serve deployment: it wires the tiers' handles and the config into
the request chain and mounts the routes; it holds no request logic of its own."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ray import serve

from kernel.config import AppConfig
from kernel.gpu import GPUCollector
from serving import metrics
from serving.channels.common import owed_replies
from serving.channels.hub import channel_adapters, mount_channels
from serving.channels.outbox import StoreOutbox
from serving.ingress import routes_admin, routes_health, routes_openai
from serving.ingress.callers import DocsFollowAuth
from serving.ingress.errors import VERSION, build_fastapi
from serving.local_handle import start_local
from serving.model_deployment import EngineHost
from serving.pipeline.chain import RequestPipeline
from serving.pipeline.channel_entry import PipelineResponder

INGRESS_NAME = "router"  # the deployment's name in Ray Serve (kept: ops dashboards use it)

logger = logging.getLogger("onlycs.channels")


class ReplicaResponder:
    """The channels' way into the chain of the replica serving them. The channel routes are
    declared before any replica exists, and Ray Serve runs a frozen copy of the app, so the
    replica's own chain is found through Ray's replica context at reply time."""

    async def reply(self, channel: str, session_id: str, text: str,
                    persona: str | None) -> str:
        ingress = serve.get_replica_context().servable_object
        return await PipelineResponder(ingress.pipeline).reply(channel, session_id, text,
                                                               persona)


def _replica_store() -> Any:
    """The store of the router replica serving a channel (None: store off)."""
    return serve.get_replica_context().servable_object.pipeline.sessions.store


def make_ingress_deployment(config: AppConfig) -> Any:
    """The ingress deployment class, with its FastAPI app built for this config."""
    app = build_fastapi(config.server.docs_enabled)
    app.add_middleware(DocsFollowAuth)
    for module in (routes_health, routes_openai, routes_admin):
        app.include_router(module.router)
    if config.server.metrics_enabled:
        app.include_router(routes_health.metrics_router)
    mount_channels(app, config.channels, ReplicaResponder(),
                   StoreOutbox(_replica_store, config.channels.owed_reply_max_age_s))

    @serve.deployment(name=INGRESS_NAME)
    @serve.ingress(app)
    class Ingress:
        async def __init__(self, config: AppConfig, handles: dict[str, Any],
                           own_engine: tuple[Any, ...] | None = None) -> None:
            # `placement = "router"`: that tier's engine runs here, in this process.
            self.engine = EngineHost(*own_engine) if own_engine else None
            if self.engine is not None:
                handles = {**handles, self.engine.tier: await start_local(self.engine)}
            self.pipeline = RequestPipeline(config, handles)
            self.created = int(time.time())
            self.collectors = [GPUCollector()]
            metrics.BUILD_INFO.labels(VERSION, config.profile).set(1)
            self._resending = asyncio.get_running_loop().create_task(self._resend_owed())

        async def _resend_owed(self) -> None:
            """Replies an earlier run still owed a platform, sent by the channels this
            replica's routes call (Ray Serve sets the app up after this constructor)."""
            while getattr(self, "_asgi_app", None) is None:
                await asyncio.sleep(0.1)
            for adapter in channel_adapters(self._asgi_app).values():
                try:
                    await adapter.resend_owed()
                except Exception:
                    logger.exception("channel %s: owed replies not resent", adapter.name)

        async def check_health(self) -> None:
            # Ray Serve restarts this replica if its own engine fails.
            if self.engine is not None:
                await self.engine.check_health()

        def __del__(self) -> None:
            engine = getattr(self, "engine", None)
            if engine is not None:
                engine.shutdown()

        async def begin_drain(self) -> int:
            """SIGTERM: stop taking new work; started work finishes."""
            self.pipeline.admission.draining = True
            return await self.in_flight()

        async def in_flight(self) -> int:
            """Requests still running, and replies still owed to a chat platform."""
            return self.pipeline.admission.in_flight + owed_replies()

    return Ingress
