"""State every router replica shares and a restart keeps: the loaded adapters and the
default, the router rules in force.

It lives beside the conversations, in the store's database (`appliance_state`), so on a
cluster with the PostgreSQL store one admin call reaches the router replicas on every node,
and on one box a restarted replica starts where the last one stopped. Each replica checks
the entries' generations at most once a second (one small read) and applies what another
replica changed. With the store disabled the state is this replica's memory only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from kernel.store import ConversationStore, StoreError

logger = logging.getLogger(__name__)

ADAPTERS = "adapters"
ROUTER_RULES = "router_rules"


class SharedState:
    def __init__(self, store: ConversationStore | None, check_every_s: float = 1.0):
        self.store = store
        self.check_every_s = check_every_s  # how often a replica looks (`follow`)
        self._seen: dict[str, int] = {}

    @property
    def persisted(self) -> bool:
        return self.store is not None

    def load(self, name: str) -> Any | None:
        """The entry as stored (at start); it counts as seen."""
        if self.store is None:
            return None
        found = self.store.read_state(name)
        if found is None:
            return None
        self._seen[name] = found[0]
        return json.loads(found[1])

    async def save(self, name: str, value: Any) -> None:
        if self.store is None:
            return
        generation = await asyncio.to_thread(self.store.write_state, name,
                                             json.dumps(value, ensure_ascii=False))
        self._seen[name] = generation

    async def changed(self) -> dict[str, Any]:
        """Entries another replica wrote since this one last looked (a store out of reach
        is logged; the next look tries again)."""
        if self.store is None:
            return {}
        try:
            generations = await asyncio.to_thread(self.store.state_generations)
            out = {}
            for name, generation in generations.items():
                if self._seen.get(name) == generation:
                    continue
                found = await asyncio.to_thread(self.store.read_state, name)
                if found is not None:
                    self._seen[name] = found[0]
                    out[name] = json.loads(found[1])
            return out
        except StoreError as exc:
            logger.warning("shared state: cannot read the store (%s); trying again", exc)
            return {}
