"""The router's FastAPI app on its own: docs switch and error shapes (no Ray Serve)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from serving.ingress.errors import build_fastapi


def test_docs_can_be_turned_off() -> None:
    on, off = TestClient(build_fastapi(True)), TestClient(build_fastapi(False))
    assert on.get("/openapi.json").status_code == 200
    assert on.get("/docs").status_code == 200
    assert off.get("/openapi.json").status_code == 404
    assert off.get("/docs").status_code == 404


def test_framework_errors_use_the_openai_shape() -> None:
    client = TestClient(build_fastapi(True))
    for response, status in ((client.get("/nowhere"), 404),
                             (client.request("TRACE", "/openapi.json"), 405)):
        assert response.status_code == status
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
