"""The one skeleton every chat platform follows: verify -> parse -> ignore -> de-duplicate
-> reply within the platform's deadline in the callback's own response, or later through
its API. Each adapter supplies only the platform's parts."""

from __future__ import annotations

import abc
import asyncio
import hashlib
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kernel.channel_config import ChannelsConfig
from serving.channels.common import (
    Deliveries,
    Rejected,
    ReplyRefused,
    Responder,
    SeenMessages,
    answer,
    counted,
    logger,
    rejection,
    session_for,
    session_secret,
)
from serving.channels.outbox import NoOutbox, Outbox

# A reply owed since the last start waits this long between tries for the appliance to
# answer again (its tiers may still be loading) before the user gets the busy message.
RESEND_RETRY_S = 10.0
RESEND_TRIES = 60


@dataclass(frozen=True)
class Inbound:
    """A user's text message, verified: who, what, and what a reply needs (`context`)."""

    message_ids: tuple[str, ...]  # each one a platform may resend under
    user: str
    text: str
    context: Any = None


@dataclass(frozen=True)
class Ignored:
    """A verified callback that carries nothing to answer (another event, an image...)."""

    what: str


class ChannelAdapter(abc.ABC):
    name: ClassVar[str]

    def __init__(self, channels: ChannelsConfig, responder: Responder, *,
                 persona: str | None, seen: SeenMessages, inline_reply_s: float | None):
        """`inline_reply_s`: how long a reply may take to go back in the callback's own
        response (None: the platform wants an acknowledgement at once, replies go later)."""
        self.channels = channels
        self.responder = responder
        self.persona = persona
        self.seen = seen
        self.inline_reply_s = inline_reply_s
        self.deliveries = Deliveries()
        self.outbox: Outbox = NoOutbox()
        self.session_secret = session_secret(channels.session_secret_file)
        self.router = APIRouter()

    @abc.abstractmethod
    async def inbound(self, request: Request) -> Inbound | Ignored | Response:
        """Verify and parse a callback (raise Rejected); a Response answers a handshake."""

    @abc.abstractmethod
    def acknowledge(self) -> Response:
        """The platform's "received, the reply comes later" answer."""

    @abc.abstractmethod
    async def send_later(self, message: Inbound, text: str) -> None:
        """Deliver a reply through the platform's API (raise on failure)."""

    def inline(self, message: Inbound, text: str) -> Response:
        raise NotImplementedError(f"{self.name} replies only through its API")

    async def receive(self, request: Request) -> Response:
        try:
            parsed = await self.inbound(request)
        except Rejected as err:
            return rejection(self.name, err)
        if isinstance(parsed, Response):
            return parsed
        if isinstance(parsed, Ignored):
            logger.info("channel %s ignored a %s", self.name, parsed.what)
            counted(self.name, "ignored")
            return self.acknowledge()
        # A list, not a generator: every id is recorded, even after the first seen one.
        if not all([self.seen.first_time(key) for key in parsed.message_ids]):
            logger.info("channel %s: resent message %s ignored", self.name,
                        parsed.message_ids[0])
            counted(self.name, "duplicate")
            return self.acknowledge()
        session_id = session_for(self.name, parsed.user, self.session_secret)
        reply = asyncio.ensure_future(answer(self.responder, self.channels.busy_reply,
                                             self.name, session_id, parsed.text,
                                             self.persona))
        if self.inline_reply_s is not None:
            done, _ = await asyncio.wait({reply}, timeout=self.inline_reply_s)
            if reply in done:
                counted(self.name, "replied_inline")
                return self.inline(parsed, reply.result())
        # Owed from here on: on record before the platform hears "received".
        reply_id = self._reply_id(parsed)
        await self.outbox.owe(reply_id, self.name, _record(parsed, session_id))
        self.deliveries.spawn(self._deliver(reply_id, parsed, session_id, reply))
        return self.acknowledge()

    def _reply_id(self, message: Inbound) -> str:
        return f"{self.name}:" + hashlib.sha256(
            "\0".join(message.message_ids).encode()).hexdigest()[:32]

    async def _deliver(self, reply_id: str, message: Inbound, session_id: str,
                       reply: Awaitable[str], *, resent: bool = False) -> None:
        """Send the reply once it is ready; the record goes when it has been sent or has
        failed for good. A stop cancels this and leaves the record for the next start."""
        text = await reply
        # Kept with its text: a stop while sending resends it, never asks the model again.
        await self.outbox.owe(reply_id, self.name, _record(message, session_id, text))
        try:
            await self.send_later(message, text)
        except Exception:
            counted(self.name, "delivery_failed")
            logger.exception("channel %s: a late reply could not be delivered", self.name)
        else:
            counted(self.name, "resent" if resent else "replied_later")
        await self.outbox.settle(reply_id)

    async def resend_owed(self) -> int:
        """Send what an earlier run of the appliance still owed; returns how many."""
        claimed = await self.outbox.claim(self.name)
        for reply_id, record in claimed:
            message = Inbound(tuple(record["message"]["message_ids"]),
                              record["message"]["user"], record["message"]["text"],
                              record["message"]["context"])
            for key in message.message_ids:  # the platform may resend it after our restart
                self.seen.first_time(key)
            text = record.get("reply")
            reply = _ready(text) if text is not None else self._patient_answer(
                record["session_id"], message.text)
            self.deliveries.spawn(self._deliver(reply_id, message, record["session_id"],
                                                reply, resent=True))
        if claimed:
            logger.info("channel %s: sending %d replies owed since the last stop",
                        self.name, len(claimed))
        return len(claimed)

    async def _patient_answer(self, session_id: str, text: str) -> str:
        """Right after a start the tiers may still be loading: try again for a while before
        falling back to the busy message."""
        for _ in range(RESEND_TRIES - 1):
            try:
                return await self.responder.reply(self.name, session_id, text, self.persona)
            except ReplyRefused:
                await asyncio.sleep(RESEND_RETRY_S)
            except Exception:
                logger.exception("channel %s: an owed reply failed; trying again", self.name)
                await asyncio.sleep(RESEND_RETRY_S)
        return await answer(self.responder, self.channels.busy_reply, self.name, session_id,
                            text, self.persona)


def _record(message: Inbound, session_id: str, reply: str | None = None) -> dict[str, Any]:
    return {"message": asdict(message), "session_id": session_id, "reply": reply}


async def _ready(text: str) -> str:
    return text
