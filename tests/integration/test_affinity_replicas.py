"""Two real Ray Serve replicas of a tier: session affinity, and an adapter loaded once.

The policies under test are the ones the model tiers use; the replicas here are a tiny echo
deployment, or the real ModelServer deployment over the scripted engine of the unit tests,
instead of two more vLLM engines, which would not fit beside the session's stack on these
2-core machines. Ray Serve, its routing and the replica processes are real.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import ray

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    import ray
    from ray import serve

    ray.init(address="local", num_cpus=2, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def test_each_session_sticks_to_one_of_two_replicas(ray_local: None) -> None:
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    @serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0},
                      request_router_config=RequestRouterConfig(
                          request_router_class="serving.affinity.SessionAffinityRequestRouter"))
    class Echo:
        def __call__(self, body: dict) -> str:
            return serve.get_replica_context().replica_id.unique_id

    handle = serve.run(Echo.bind(), name="affinity-test", route_prefix=None)
    replicas_by_session: dict[str, set[str]] = {}
    for _ in range(4):
        for session in [f"s-{i}" for i in range(24)]:
            replica = handle.remote({"user": session, "messages": []}).result()
            replicas_by_session.setdefault(session, set()).add(replica)
    assert all(len(seen) == 1 for seen in replicas_by_session.values())
    assert len(set().union(*replicas_by_session.values())) == 2  # both replicas used
    replicas = set().union(*replicas_by_session.values())
    anonymous = [handle.remote({"messages": [], "id": uuid.uuid4().hex}).result()
                 for _ in range(40)]
    # Requests without a session are still served, each by one of the two replicas.
    assert len(anonymous) == 40 and set(anonymous) <= replicas
    serve.delete("affinity-test")


def test_an_adapter_loaded_on_one_replica_is_served_by_both(ray_local: None) -> None:
    from ray import serve

    from serving.adapter_sync import ADAPTERS_FIELD
    from serving.model_deployment import ModelServer
    from tests.fake_tiers import ENGINE

    tier = serve.deployment(ModelServer, name="small", num_replicas=2,
                            ray_actor_options={"num_cpus": 0})
    handle = serve.run(tier.bind("small", {"model": "small"}, ENGINE), name="lora-replicas",
                       route_prefix=None)
    assert handle.load_adapter.remote("tone-v1", "/adapters/tone-v1").result()["status"] == 200

    def loaded_by_replica() -> dict[int, list[str]]:
        seen: dict[int, list[str]] = {}
        for _ in range(40):
            stats = handle.stats.remote().result()
            seen[stats["pid"]] = stats["adapters"]
        return seen

    before = loaded_by_replica()
    assert len(before) == 2 and sorted(map(len, before.values())) == [0, 1]  # one has it
    body = {"model": "tone-v1", "messages": [{"role": "user", "content": "hi"}],
            ADAPTERS_FIELD: {"tone-v1": "/adapters/tone-v1"}}
    answers = [handle.options(stream=True).chat.remote(body) for _ in range(24)]
    nodes = set()
    for stream in answers:
        # the node that answered, then the answer (the replica sends batches of items)
        marker, result = [item for batch in stream for item in batch]
        nodes.add(marker["node"])
        assert result["status"] == 200
        assert result["body"]["model"] == "tone-v1"
    assert all(names == ["tone-v1"] for names in loaded_by_replica().values())
    assert nodes == {ray.util.get_node_ip_address()}  # one node: both replicas name it
    # The router dropped it from its registry: the next request unloads it everywhere.
    dropped = {**body, "model": "small", ADAPTERS_FIELD: {}}
    for _ in range(24):
        list(handle.options(stream=True).chat.remote(dropped))
    assert all(names == [] for names in loaded_by_replica().values())
    serve.delete("lora-replicas")
