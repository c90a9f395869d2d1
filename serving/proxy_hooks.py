"""Code Ray Serve runs where it listens (its HTTP proxy, or the router replica with direct
ingress), before the server starts.

The launcher names `configure_proxy` in RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH.
It does what Ray Serve has no option for:
- TLS 1.3 only: Ray Serve hands the certificate to uvicorn, whose SSL context also
  accepts TLS 1.2 (and an OPENSSL_CONF MinProtocol does not reach Python's contexts),
  so uvicorn's context factory is wrapped to raise the minimum version.
- Body size: a body larger than the limit is refused with 413 from its
  Content-Length, or once a chunked body grows past it: never read whole.
- Direct ingress: Ray binds the replica's socket itself, without SO_REUSEADDR, so a router
  replica that replaces a killed one cannot bind the port while the dead one's connections
  linger in TIME_WAIT, and Ray then blocks that port for good: the port gets the option.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import types
from typing import Any

from starlette.middleware import Middleware

from kernel.errors import error_body

TLS_MIN_ENV = "ONLYCS_TLS_MIN_VERSION"
MAX_BODY_ENV = "ONLYCS_MAX_BODY_BYTES"


def require_tls13() -> None:
    import uvicorn.config

    original = uvicorn.config.create_ssl_context
    if getattr(original, "onlycs_tls13", False):
        return

    def create_ssl_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = original(*args, **kwargs)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return context

    create_ssl_context.onlycs_tls13 = True  # type: ignore[attr-defined]
    uvicorn.config.create_ssl_context = create_ssl_context


class BodySizeLimit:
    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(error_body(
            413, f"request body larger than {self.max_bytes} bytes",
            code="request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        # No length given (chunked): read at most the limit, then decide.
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replaying_receive() -> dict:
            return next(replay, None) or await receive()

        await self.app(scope, replaying_receive, send)


class _ReusingSockets(types.ModuleType):
    """The socket module, but every socket made through it may rebind a port whose last
    connections are still in TIME_WAIT (what uvicorn itself does)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(socket, name)

    @staticmethod
    def socket(*args: Any, **kwargs: Any) -> socket.socket:
        made = socket.socket(*args, **kwargs)
        made.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return made


def reuse_address() -> None:
    from ray.serve._private import http_util

    if not isinstance(http_util.socket, _ReusingSockets):
        http_util.socket = _ReusingSockets("socket")


def configure_proxy() -> list[Middleware]:
    if os.environ.get(TLS_MIN_ENV) == "1.3":
        require_tls13()
    if os.environ.get("RAY_SERVE_ENABLE_DIRECT_INGRESS") == "1":
        reuse_address()
    max_body = int(os.environ.get(MAX_BODY_ENV, "0"))
    return [Middleware(BodySizeLimit, max_bytes=max_body)] if max_body else []
