"""State every router replica shares and a restart keeps, over the real store and the real
ModelServer deployment body (fake engines: no vLLM in unit tests).

Each "replica" here is what Ray Serve would run in its own process: a RequestPipeline (the
router) or a ModelServer (a tier), built on the same config and so the same store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from lora.registry import ADAPTER_KIND, base_model_sha256
from models.manifest import write_manifest
from serving.access import Caller
from serving.adapter_sync import ADAPTERS_FIELD
from serving.pipeline.chain import RequestPipeline
from serving.protocol import ChatRequest
from tests.fake_tiers import LocalHandle, local_tier
from tests.unit.serving.pipeline.conftest import make_config

CALLER = Caller("key-a", "client")
RULES = "version: 1\ntree: {id: everything.small, tier: small}"


def _adapter(tmp_path: Path, name: str) -> None:
    make_config(tmp_path)  # writes the base model the adapter names
    folder = tmp_path / "adapters" / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (folder / "adapter_model.safetensors").write_bytes(b"lora weights " + name.encode())
    write_manifest(folder, {"kind": ADAPTER_KIND, "rank": 8,
                            "base_model_sha256": base_model_sha256(tmp_path / "model")})


def _send_to(router: RequestPipeline, replica: LocalHandle) -> None:
    """What the tiers' request router would choose next."""
    router.dispatcher.handles["small"] = router.dispatcher._streaming["small"] = replica


def _ask(model: str) -> ChatRequest:
    return ChatRequest.model_validate({"model": model, "max_tokens": 4,
                                       "messages": [{"role": "user", "content": "hi"}]})


async def test_an_adapter_loaded_once_is_served_by_every_replica_of_the_tier(
        tmp_path: Path) -> None:
    _adapter(tmp_path, "tone-v1")
    replicas = [await local_tier("small"), await local_tier("small")]
    large, kb = await local_tier("large"), await local_tier("kb")
    # The admin's load reaches replica 0 only, as a Ray Serve handle call does.
    router = RequestPipeline(make_config(tmp_path),
                             {"small": replicas[0], "large": large, "kb": kb})
    await router.adapters.load("tone-v1", "tone-v1", False)
    assert replicas[0].engine.loaded and not replicas[1].engine.loaded

    for replica in replicas:  # the session-affinity router may pick either
        _send_to(router, replica)
        outcome = await router.chat(_ask("small:tone-v1"), {}, CALLER)
        assert outcome.status == 200, outcome
        assert replica.engine.bodies[-1]["model"] == "tone-v1"
        assert ADAPTERS_FIELD not in replica.engine.bodies[-1]  # never reaches the engine
    assert list(replicas[1].engine.loaded) == ["tone-v1"]  # loaded there on first use

    await router.adapters.unload("tone-v1")  # reaches replica 0
    _send_to(router, replicas[1])
    await router.chat(_ask("small"), {}, CALLER)
    assert not replicas[0].engine.loaded and not replicas[1].engine.loaded


async def test_a_restarted_router_keeps_the_adapters_the_default_and_the_rules(
        tmp_path: Path, tiers: dict[str, LocalHandle]) -> None:
    _adapter(tmp_path, "tone-v1")
    _adapter(tmp_path, "tone-v2")
    before = RequestPipeline(make_config(tmp_path), tiers)
    await before.adapters.load("tone-v1", "tone-v1", False)
    await before.adapters.load("tone-v2", "tone-v2", True)
    await before.reload_rules(RULES)
    before.sessions.store.close()

    after = RequestPipeline(make_config(tmp_path), tiers)  # a new replica process
    assert after.adapters.describe() == before.adapters.describe()
    assert after.adapters.default == "tone-v2"
    assert after.decider.engine.rules.root == before.decider.engine.rules.root
    outcome = await after.chat(_ask("auto"), {}, CALLER)
    assert outcome.route.header() == "tier=small; rule=everything.small; adapter=tone-v2"


async def test_an_adapter_whose_files_changed_is_not_restored(
        tmp_path: Path, tiers: dict[str, LocalHandle]) -> None:
    _adapter(tmp_path, "tone-v1")
    before = RequestPipeline(make_config(tmp_path), tiers)
    await before.adapters.load("tone-v1", "tone-v1", True)
    (tmp_path / "adapters" / "tone-v1" / "adapter_model.safetensors").write_bytes(b"other")
    after = RequestPipeline(make_config(tmp_path), tiers)
    assert after.adapters.loaded == {} and after.adapters.default is None


async def test_a_change_on_one_router_replica_reaches_the_others(
        tmp_path: Path, tiers: dict[str, LocalHandle]) -> None:
    _adapter(tmp_path, "tone-v1")
    head, worker = (RequestPipeline(make_config(tmp_path), tiers) for _ in range(2))
    worker.shared.check_every_s = 0.05
    worker.follow_shared_state()
    await head.adapters.load("tone-v1", "tone-v1", True)
    await head.reload_rules(RULES)
    for _ in range(100):
        if worker.adapters.default == "tone-v1" and \
                worker.decider.engine.rules.root == head.decider.engine.rules.root:
            break
        await asyncio.sleep(0.05)
    assert worker.adapters.loaded == head.adapters.loaded
    assert worker.adapters.default == "tone-v1"
    assert worker.decider.engine.rules.root == head.decider.engine.rules.root
    await head.adapters.set_default(None)
    for _ in range(100):
        if worker.adapters.default is None:
            break
        await asyncio.sleep(0.05)
    assert worker.adapters.default is None
    worker._follower.cancel()


async def test_rate_budgets_are_held_per_router_replica(
        tmp_path: Path, tiers: dict[str, LocalHandle]) -> None:
    """Documented: budgets are per replica, not shared (a shared one would cost a database
    round trip per request). With two router replicas a key gets up to twice its rpm."""
    from kernel.errors import APIError

    caller = Caller("key-budget", "client", rpm=2)
    head, worker = (RequestPipeline(make_config(tmp_path), tiers) for _ in range(2))
    for replica in (head, worker):
        for _ in range(2):
            assert (await replica.chat(_ask("small"), {}, caller)).status == 200
    for replica in (head, worker):
        try:
            await replica.chat(_ask("small"), {}, caller)
        except APIError as exc:
            assert exc.status == 429
        else:
            raise AssertionError("a third request within the minute was served")


async def test_a_tier_short_of_replicas_is_degraded_and_still_serves(
        tmp_path: Path, tiers: dict[str, LocalHandle], monkeypatch) -> None:
    """What the Serve controller reports when a node is gone (its replicas not RUNNING);
    the two-node installer test sees it on a real cluster."""
    import serving.pipeline.chain as chain

    config = make_config(tmp_path, tiers={"small": {"num_replicas": 2}})
    router = RequestPipeline(config, tiers)
    monkeypatch.setattr(chain, "running_replicas", lambda app: {"small": 2, "large": 1})
    assert (await router.readiness())[0] == "ready"
    monkeypatch.setattr(chain, "running_replicas", lambda app: {"small": 1, "large": 1})
    status, detail = await router.readiness()
    assert status == "degraded"
    assert detail["small"]["replicas"] == {"running": 1, "target": 2}
    assert (await router.chat(_ask("small"), {}, CALLER)).status == 200
