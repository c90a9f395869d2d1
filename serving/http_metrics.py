"""ASGI middleware counting every API response by endpoint, tier and status.

It sits outside FastAPI's routing so that 4xx answers from validation and the
503s of draining are counted too; a stream is timed to its last byte.
"""

from __future__ import annotations

import time
from typing import Any

from serving.metrics import REQUEST_DURATION, REQUESTS

# Known paths only: a label per arbitrary URL would let clients grow the series set.
COUNTED_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/models"})
ROUTE_HEADER = b"x-onlycs-route"


def _tier(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == ROUTE_HEADER:
            # "tier=small; rule=..." -> "small"
            return value.decode().split(";", 1)[0].removeprefix("tier=")
    return "none"


class RequestMetricsMiddleware:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in COUNTED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = {"status": 500, "tier": "none"}

        async def send_and_watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["tier"] = _tier(message.get("headers", []))
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            REQUESTS.labels(path, seen["tier"], str(seen["status"])).inc()
            REQUEST_DURATION.labels(path, seen["tier"]).observe(time.perf_counter() - started)
