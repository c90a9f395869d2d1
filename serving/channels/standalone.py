"""The channel adapters on their own: `onlycs channels serve --backend URL`.

Uses the config file's [channels], [server] and [tls] sections; the backend is any
OpenAI-compatible endpoint, its API key taken from an environment variable so it never
sits in a command line or a log.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from kernel.config import AppConfig
from serving.channels.backend import OpenAIBackend
from serving.channels.common import Responder
from serving.channels.hub import mount_channels
from serving.channels.outbox import Outbox
from serving.proxy_hooks import BodySizeLimit, require_tls13

BACKEND_KEY_ENV = "ONLYCS_BACKEND_API_KEY"


def build_app(config: AppConfig, responder: Responder, outbox: Outbox | None = None
              ) -> FastAPI:
    app = FastAPI(title="OnlyCS channels", docs_url=None, redoc_url=None, openapi_url=None)
    mount_channels(app, config.channels, responder, outbox)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodySizeLimit, max_bytes=config.security.max_body_bytes)
    return app


def serve(config: AppConfig, backend_url: str, ca_file: str | None) -> int:
    import uvicorn

    if not config.channels.enabled():
        raise SystemExit("no channel is enabled in [channels]")
    responder = OpenAIBackend(backend_url, os.environ.get(BACKEND_KEY_ENV),
                              config.channels.model, config.channels.max_tokens,
                              verify=ca_file or True)
    tls = config.tls
    if tls.enabled:
        require_tls13()
    uvicorn.run(build_app(config, responder), host=config.server.host,
                port=config.server.port,
                ssl_certfile=str(tls.cert_file) if tls.enabled else None,
                ssl_keyfile=str(tls.key_file) if tls.enabled else None,
                log_level="info")
    return 0
