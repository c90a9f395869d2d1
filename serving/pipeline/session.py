"""Session: the persona's system prompt, the stored history put before the new message, and
the turn the conversation store keeps (the new user message, plus the system text when the
session is new, and the answer).

A session belongs to the caller that made it: the store, the router's context cache and the
tiers' affinity see `<owner>/<session id>` (the owner is the API key's id, or the chat
channel), so the same id sent with another key names another session."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from kernel.config import SessionsConfig
from kernel.errors import APIError
from kernel.store import (
    ConversationStore,
    StoreBusy,
    StoredMessage,
    StoreFull,
    StoreUnavailable,
)
from serving import metrics
from serving.context import persona_name, persona_prompt, trimmed, with_context
from serving.protocol import ChatRequest, content_text

logger = logging.getLogger(__name__)

SESSION_HEADER = "x-session-id"
STORE_BUSY_RETRY_AFTER_S = 2
SESSION_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


@dataclass(frozen=True)
class PendingTurn:
    session_id: str  # as stored: `<owner>/<client id>`
    client_id: str  # as the client named it (the response header gives it back)
    messages: list[StoredMessage]


@dataclass(frozen=True)
class OpenedSession:
    request: ChatRequest  # with persona and history in front
    turn: PendingTurn | None  # None: no store


def owned(owner: str, client_id: str) -> str:
    """The stored session id; `/` never occurs in a client's id, so owners cannot collide."""
    return f"{owner}/{client_id}"


def session_id_for(headers: Mapping[str, str], req: ChatRequest) -> str:
    """From the `x-session-id` header, else the OpenAI `user` field, else a new one."""
    given = headers.get(SESSION_HEADER) or req.user
    if given is None:
        return uuid.uuid4().hex
    if not SESSION_ID.match(given):
        raise APIError(400, "session id must be 1-128 characters of letters, digits and "
                       "._:@-", param=SESSION_HEADER, code="invalid_session_id")
    return given


def request_messages(req: ChatRequest, *, new_session: bool) -> list[StoredMessage]:
    wanted = []
    if new_session:
        wanted += [StoredMessage(m.role, content_text(m.content)) for m in req.messages
                   if m.role in ("system", "developer")]
    wanted.append(StoredMessage("user", req.last_user_text()))
    return wanted


def _unavailable(exc: StoreUnavailable) -> APIError:
    logger.error("conversation store unreachable: %s", exc)
    return APIError(503, "the conversation store cannot be reached; nothing was "
                    "acknowledged, retry shortly", code="store_unavailable",
                    headers={"Retry-After": str(STORE_BUSY_RETRY_AFTER_S)})


class SessionStage:
    def __init__(self, config: SessionsConfig, store: ConversationStore | None):
        self.config = config
        self.store = store

    async def open(self, req: ChatRequest, headers: Mapping[str, str], owner: str,
                   key_persona: str | None) -> OpenedSession:
        system = persona_prompt(self.config, persona_name(headers, req, key_persona))
        if self.store is None:
            return OpenedSession(with_context(req, system, []), None)
        client_id = session_id_for(headers, req)
        session_id = owned(owner, client_id)
        try:
            known = await asyncio.to_thread(self.store.has_session, session_id)
        except StoreUnavailable as exc:
            raise _unavailable(exc) from None
        history: list[dict] = []
        if known and not any(m.role == "assistant" for m in req.messages):
            corrupt = self.store.corrupt_records
            try:
                stored = await asyncio.to_thread(self.store.recent, session_id,
                                                 self.config.history_messages)
            except StoreUnavailable as exc:
                raise _unavailable(exc) from None
            if self.store.corrupt_records > corrupt:
                metrics.STORE_CORRUPT.inc(self.store.corrupt_records - corrupt)
            history = trimmed(stored, self.config.history_chars)
        own = with_context(req, system, [])
        turn = PendingTurn(session_id, client_id,
                           request_messages(own, new_session=not known))
        return OpenedSession(with_context(req, system, history), turn)

    async def save(self, turn: PendingTurn, reply: str) -> None:
        """Commit the turn before the client sees its end: acknowledged means stored."""
        assert self.store is not None
        try:
            await asyncio.to_thread(self.store.append_turn, turn.session_id,
                                    [*turn.messages, StoredMessage("assistant", reply)])
        except StoreFull:
            metrics.STORE_FULL.inc()
            logger.error("conversation store: the disk is full")
            raise APIError(507, "the conversation store's disk is full; nothing was "
                           "acknowledged", code="insufficient_storage") from None
        except StoreUnavailable as exc:
            raise _unavailable(exc) from None
        except StoreBusy:
            logger.warning("conversation store busy (locked by another process)")
            raise APIError(503, "the conversation store is busy; nothing was acknowledged, "
                           "retry shortly", code="store_busy",
                           headers={"Retry-After": str(STORE_BUSY_RETRY_AFTER_S)}) from None
        except Exception:
            logger.exception("conversation store write failed")
            raise APIError(500, "the conversation could not be stored; nothing was "
                           "acknowledged", code="store_error") from None
