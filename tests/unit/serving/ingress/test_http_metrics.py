"""The request counter sees every answer, 4xx from validation included."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from serving.ingress.errors import build_fastapi

CHAT = "/v1/chat/completions"


def _count(status: str, path: str = CHAT) -> float:
    return REGISTRY.get_sample_value(
        "onlycs_requests_total", {"endpoint": path, "tier": "none", "status": status}) or 0.0


def test_rejected_requests_are_counted_by_status() -> None:
    app = build_fastapi(True)

    @app.post(CHAT)
    async def chat(body: dict) -> dict:
        return body

    client = TestClient(app)
    before_400, before_200 = _count("400"), _count("200")
    for _ in range(3):
        assert client.post(CHAT, content=b"{broken").status_code == 400
    assert client.post(CHAT, json={"x": 1}).status_code == 200
    assert client.get("/not-counted").status_code == 404
    assert _count("400") - before_400 == 3
    assert _count("200") - before_200 == 1
    assert _count("404", "/not-counted") == 0
