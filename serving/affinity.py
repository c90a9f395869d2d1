"""Session affinity for the model tiers: a session's turns go to the same replica, so
vLLM's prefix cache there already holds the conversation so far.

Rendezvous hashing ranks the replicas for each session id: the top replica is tried
first, the others follow in a stable order if it is full. Adding or losing a replica
moves only the sessions that hashed to it. Requests without a session keep Ray
Serve's usual choice.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ray.serve.request_router import FIFOMixin, PendingRequest, RequestRouter, RunningReplica

SESSION_FIELD = "user"  # the OpenAI field the router fills with the session id


def rank(session_id: str, replica_ids: list[str]) -> list[str]:
    def score(replica_id: str) -> bytes:
        return hashlib.blake2b(f"{session_id}\0{replica_id}".encode(), digest_size=8).digest()

    return sorted(replica_ids, key=score, reverse=True)


def session_of(request: PendingRequest | None) -> str | None:
    if request is None or not request.args or not isinstance(request.args[0], dict):
        return None
    value: Any = request.args[0].get(SESSION_FIELD)
    return value if isinstance(value, str) and value else None


class SessionAffinityRequestRouter(FIFOMixin, RequestRouter):
    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None
                              ) -> list[list[RunningReplica]]:
        session = session_of(pending_request)
        if session is None or len(candidate_replicas) < 2:
            return [candidate_replicas]
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        return [[by_id[i]] for i in rank(session, list(by_id))]
