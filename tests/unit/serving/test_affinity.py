from __future__ import annotations

from collections import Counter

from ray.serve.request_router import PendingRequest

from serving.affinity import rank, session_of


def test_a_session_always_ranks_the_same_replica_first() -> None:
    replicas = ["r1", "r2", "r3"]
    assert rank("session-42", replicas) == rank("session-42", list(reversed(replicas)))
    assert sorted(rank("session-42", replicas)) == replicas


def test_sessions_spread_and_only_the_lost_replicas_sessions_move() -> None:
    before = {f"s{i}": rank(f"s{i}", ["r1", "r2", "r3"])[0] for i in range(600)}
    assert min(Counter(before.values()).values()) > 150  # roughly even
    after = {s: rank(s, ["r1", "r3"])[0] for s in before}
    moved = {s for s in before if before[s] != after[s]}
    assert moved == {s for s, r in before.items() if r == "r2"}


async def test_session_is_read_from_the_engine_body() -> None:
    # PendingRequest makes an asyncio.Future: it needs a running loop.
    def pending(*args: object) -> PendingRequest:
        return PendingRequest(args=list(args), kwargs={}, metadata=None)

    assert session_of(pending({"user": "abc", "messages": []})) == "abc"
    assert session_of(pending({"messages": []})) is None
    assert session_of(pending("not a dict")) is None
    assert session_of(None) is None
