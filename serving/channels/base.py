"""The one skeleton every chat platform follows: verify -> parse -> ignore -> de-duplicate
-> reply within the platform's deadline in the callback's own response, or later through
its API. Each adapter supplies only the platform's parts."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kernel.channel_config import ChannelsConfig
from serving.channels.common import (
    Deliveries,
    Rejected,
    Responder,
    SeenMessages,
    answer,
    counted,
    logger,
    rejection,
    session_for,
    session_secret,
)


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
        self.deliveries = Deliveries(self.name)
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
        reply = answer(self.responder, self.channels.busy_reply, self.name,
                       session_for(self.name, parsed.user, self.session_secret), parsed.text,
                       self.persona)
        if self.inline_reply_s is None:
            self.deliveries.spawn(self.deliveries.send_when_ready(
                reply, lambda text: self.send_later(parsed, text)))
            return self.acknowledge()
        text = await self.deliveries.within(self.inline_reply_s, reply,
                                            lambda late: self.send_later(parsed, late))
        if text is None:
            return self.acknowledge()
        counted(self.name, "replied_inline")
        return self.inline(parsed, text)
