"""Session affinity across two real Ray Serve replicas.

The policy under test is the one the model tiers use; the replicas here are a tiny echo
deployment instead of two more vLLM engines, which would not fit beside the session's
stack on these 2-core machines. Ray Serve, its routing and the replicas are real.
"""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration


def test_each_session_sticks_to_one_of_two_replicas() -> None:
    import ray
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    ray.init(address="local", num_cpus=2, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    try:
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
    finally:
        serve.shutdown()
        ray.shutdown()
