"""Replies owed to a chat platform, kept (sealed) in the conversation store from the moment
the message is acknowledged until the reply is sent: a stop that outlasts the drain, or a
crash, loses none of them; the next start of the appliance sends them.

A record belongs to the appliance run that made it (`ONLYCS_RUN_ID`, set by the launcher
for every process of one `onlycs serve`): a starting router replica claims only what an
earlier run left, never what a sibling replica of its own run is still delivering.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from kernel.store import ConversationStore, StoreError

logger = logging.getLogger("onlycs.channels")

RUN_ENV = "ONLYCS_RUN_ID"
_PROCESS_RUN = uuid.uuid4().hex  # outside `onlycs serve` (the standalone channels, tests)


def current_run() -> str:
    return os.environ.get(RUN_ENV) or _PROCESS_RUN


def new_run_id() -> str:
    return uuid.uuid4().hex


class Outbox(Protocol):
    async def owe(self, reply_id: str, channel: str, record: dict[str, Any]) -> None: ...

    async def settle(self, reply_id: str) -> None: ...

    async def claim(self, channel: str) -> list[tuple[str, dict[str, Any]]]: ...


class NoOutbox:
    """No store (store.enabled = false, the standalone channels): what a stop cuts off is
    lost, as the README says."""

    async def owe(self, reply_id: str, channel: str, record: dict[str, Any]) -> None:
        return None

    async def settle(self, reply_id: str) -> None:
        return None

    async def claim(self, channel: str) -> list[tuple[str, dict[str, Any]]]:
        return []


class StoreOutbox:
    """The outbox in a conversation store, found through `store` at call time (a router
    replica's store exists only once the replica does). A store failure is logged and the
    delivery goes on: the reply in hand is never held back for want of a record."""

    def __init__(self, store: Callable[[], ConversationStore | None], max_age_s: float):
        self._store = store
        self.max_age_s = max_age_s

    async def _call(self, what: str, method: str, *args: Any) -> Any:
        store = self._store()
        if store is None:
            return None
        try:
            return await asyncio.to_thread(getattr(store, method), *args)
        except StoreError as exc:
            logger.error("channels: could not %s an owed reply: %s", what, exc)
            return None

    async def owe(self, reply_id: str, channel: str, record: dict[str, Any]) -> None:
        await self._call("record", "owe_reply", reply_id, channel, current_run(),
                         json.dumps(record, ensure_ascii=False))

    async def settle(self, reply_id: str) -> None:
        await self._call("settle", "settle_reply", reply_id)

    async def claim(self, channel: str) -> list[tuple[str, dict[str, Any]]]:
        claimed = await self._call("claim", "claim_owed_replies", channel, current_run(),
                                   self.max_age_s)
        return [(reply_id, json.loads(payload)) for reply_id, payload in claimed or []]
