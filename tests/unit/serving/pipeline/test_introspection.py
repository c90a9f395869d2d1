"""With auth on, the API's shape (/docs, /openapi.json) and the tiers' details in /readyz
(stats, adapter names) are for callers with a key; a probe without one learns up or down."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kernel.keys import KeyStore
from serving.ingress import routes_health, routes_openai
from serving.ingress.callers import DocsFollowAuth
from serving.ingress.errors import build_fastapi
from serving.pipeline.chain import RequestPipeline
from tests.unit.serving.pipeline.conftest import make_config


def _client(tmp_path: Path, tiers, *, public: bool = False) -> tuple[TestClient, str]:
    tmp_path.mkdir(exist_ok=True)
    config = make_config(tmp_path, security={"auth": "on"},
                         server={"public_introspection": public})
    key, _ = KeyStore(config.security.keys_file).create("app", "client")
    app = build_fastapi(True)
    app.add_middleware(DocsFollowAuth)
    app.include_router(routes_health.router)
    app.include_router(routes_openai.router)

    class Served:
        created = 0
        pipeline = RequestPipeline(config, tiers)

    app.state.ingress = Served
    return TestClient(app), key


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
async def test_the_api_description_needs_a_key_when_auth_is_on(tmp_path: Path, tiers,
                                                              path: str) -> None:
    client, key = _client(tmp_path, tiers)
    refused = client.get(path)
    assert refused.status_code == 401 and refused.json()["error"]["type"]
    assert client.get(path, headers={"authorization": f"Bearer {key}"}).status_code == 200
    public, _ = _client(tmp_path / "public", tiers, public=True)
    assert public.get(path).status_code == 200


async def test_readiness_without_a_key_says_only_up_or_down(tmp_path: Path, tiers) -> None:
    client, key = _client(tmp_path, tiers)
    anonymous = client.get("/readyz")
    assert anonymous.status_code == 200
    assert anonymous.json()["tiers"] == {name: {"ready": True} for name in tiers}
    detailed = client.get("/readyz", headers={"authorization": f"Bearer {key}"}).json()
    assert all("bodies" in tier for tier in detailed["tiers"].values())
