"""ASGI middleware counting every API response by endpoint, tier and status.

It sits outside FastAPI's routing so that 4xx answers from validation and the
503s of draining are counted too; a stream is timed to its last byte. The route that
answered leaves the tier in the request's state (`TIER_STATE`), not in a string to parse.
"""

from __future__ import annotations

import time
from typing import Any

from serving.metrics import REQUEST_DURATION, REQUESTS

# Known paths only: a label per arbitrary URL would let clients grow the series set.
COUNTED_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/models"})
TIER_STATE = "onlycs_tier"


class RequestMetricsMiddleware:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in COUNTED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = {"status": 500}
        state = scope.setdefault("state", {})

        async def send_and_watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            tier = state.get(TIER_STATE) or "none"
            REQUESTS.labels(path, tier, str(seen["status"])).inc()
            REQUEST_DURATION.labels(path, tier).observe(time.perf_counter() - started)
