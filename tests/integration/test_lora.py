"""LoRA adapters through the real stack: trained here on the shipped knowledge base,
validated, loaded and swapped while requests stream."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Appliance
from tests.integration.test_observability import _samples, _total

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def adapters(appliance: Appliance) -> Path:
    """Two adapters, trained for one epoch (about 20 s here), under the adapters root."""
    root = appliance.config_path.parent / "adapters"
    made = appliance.onlycs("lora", "train", "--out", str(root / "kb-a"), "--epochs", "1",
                            "--rank", "8")
    assert made.returncode == 0, made.stderr[-3000:]
    shutil.copytree(root / "kb-a", root / "kb-b")
    return root


def _load(appliance: Appliance, name: str, path: str, key: str = "admin",
          default: bool = False) -> httpx.Response:
    return appliance.http(key).post("/admin/adapters",
                                    json={"name": name, "path": path, "default": default})


def test_load_list_and_serve_by_model_name(appliance: Appliance, adapters: Path) -> None:
    assert _load(appliance, "kb-a", "kb-a", key="client").status_code == 403
    loaded = _load(appliance, "kb-a", "kb-a")
    assert loaded.status_code == 200, loaded.text
    assert [a["name"] for a in loaded.json()["adapters"]] == ["kb-a"]
    assert "small:kb-a" in [m.id for m in appliance.openai().models.list().data]
    raw = appliance.openai().chat.completions.with_raw_response.create(
        model="small:kb-a", max_tokens=12,
        messages=[{"role": "user", "content": "What is the support phone number?"}])
    assert raw.headers["x-onlycs-route"] == "tier=small; rule=pinned; adapter=kb-a"
    assert raw.parse().choices[0].message.content
    missing = appliance.http().post("/v1/chat/completions", json={
        "model": "small:nope", "messages": [{"role": "user", "content": "hi"}]})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(("name", "path", "message"), [
    ("evil", "../../etc", "inside the adapters root"),
    ("../evil", "kb-a", "adapter name"),
    ("empty", ".", "not an adapter"),
])
def test_bad_loads_are_refused_and_serving_goes_on(appliance: Appliance, adapters: Path,
                                                   name: str, path: str, message: str) -> None:
    refused = _load(appliance, name, path)
    assert refused.status_code == 400 and message in refused.json()["error"]["message"]
    assert appliance.http().get("/readyz").status_code == 200


def test_adapter_for_another_base_model_is_refused(appliance: Appliance,
                                                  adapters: Path) -> None:
    other = adapters / "kb-other"
    shutil.copytree(adapters / "kb-a", other)
    manifest = json.loads((other / "onlycs-manifest.json").read_text())
    manifest["meta"]["base_model_sha256"] = "0" * 64
    (other / "onlycs-manifest.json").write_text(json.dumps(manifest))
    refused = _load(appliance, "kb-other", "kb-other")
    assert refused.status_code == 400 and "another base model" in refused.text


def test_default_swaps_under_streaming_load_without_a_failure(appliance: Appliance,
                                                              adapters: Path) -> None:
    assert _load(appliance, "kb-a", "kb-a", default=True).status_code == 200
    before = _samples(appliance)
    body = {"model": "small", "max_tokens": 48, "ignore_eos": True, "stream": True,
            "messages": [{"role": "user", "content": "Tell me about your lamps."}]}

    async def scenario() -> tuple[list[tuple[int, str, int]], str]:
        async with httpx.AsyncClient(base_url=appliance.base_url, verify=appliance.trust(),
                                     timeout=300, headers={"authorization":
                                                           f"Bearer {appliance.admin_key}"},
                                     limits=httpx.Limits(max_connections=64)) as client:
            async def stream_one() -> tuple[int, str, int]:
                async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                    chunks = [line async for line in r.aiter_lines() if line.startswith("data:")]
                    return r.status_code, r.headers["x-onlycs-route"], len(chunks)

            running = [asyncio.create_task(stream_one()) for _ in range(32)]
            await asyncio.sleep(1.0)
            # Load a new version while 32 requests stream, then make it the default.
            loaded = await client.post("/admin/adapters", json={"name": "kb-b", "path": "kb-b"})
            assert loaded.status_code == 200, loaded.text
            swapped = await client.put("/admin/adapters/default", json={"name": "kb-b"})
            assert swapped.status_code == 200 and swapped.json()["previous_default"] == "kb-a"
            after = await client.post("/v1/chat/completions", json={**body, "stream": False,
                                                                     "max_tokens": 2})
            return await asyncio.gather(*running), after.headers["x-onlycs-route"]

    results, route_after = asyncio.run(scenario())
    assert all(status == 200 and chunks > 40 for status, _, chunks in results), results
    assert {route for _, route, _ in results} == {"tier=small; rule=pinned; adapter=kb-a"}
    assert route_after == "tier=small; rule=pinned; adapter=kb-b"
    after = _samples(appliance)
    assert _total(after, "onlycs_adapter_requests_total", adapter="kb-a") - \
        _total(before, "onlycs_adapter_requests_total", adapter="kb-a") == 32
    assert _total(after, "onlycs_adapter_default_info", adapter="kb-b") == 1

    rollback = appliance.http("admin").put("/admin/adapters/default", json={"name": "kb-a"})
    assert rollback.status_code == 200 and rollback.json()["default"] == "kb-a"
    assert appliance.http("admin").delete("/admin/adapters/kb-b").status_code == 200
    assert appliance.http("admin").put("/admin/adapters/default",
                                       json={"name": None}).status_code == 200
    assert appliance.http("admin").delete("/admin/adapters/kb-a").json()["adapters"] == []


def test_reloading_a_name_from_another_folder_is_a_conflict(appliance: Appliance,
                                                             adapters: Path) -> None:
    assert _load(appliance, "kb-a", "kb-a").status_code == 200
    assert _load(appliance, "kb-a", "kb-a").status_code == 200  # same folder: no-op
    conflict = _load(appliance, "kb-a", "kb-b")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "adapter_exists"
    assert appliance.http("admin").delete("/admin/adapters/kb-a").status_code == 200
