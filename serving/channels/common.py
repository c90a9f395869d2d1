"""What every channel adapter shares: the responder it asks, de-duplication, delivery
within a platform's deadline, and the one HTTP client for calls to the platforms."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol
from xml.etree import ElementTree

import httpx
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as defused
from fastapi.responses import PlainTextResponse

from kernel.crypto import write_secret
from serving.metrics import CHANNEL_MESSAGES

logger = logging.getLogger("onlycs.channels")


class ReplyRefused(Exception):
    """The backend would not answer now (rate limit, overload); the user gets the busy
    message instead of silence."""


class Responder(Protocol):
    async def reply(self, channel: str, session_id: str, text: str,
                    persona: str | None) -> str:
        """The assistant's answer to `text` in the session; raises ReplyRefused."""
        ...


class Rejected(Exception):
    """A callback that fails verification or parsing; answered with `status`, logged,
    never passed to a model."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def counted(channel: str, outcome: str) -> None:
    CHANNEL_MESSAGES.labels(channel, outcome).inc()


def rejection(channel: str, err: Rejected) -> PlainTextResponse:
    logger.warning("channel %s rejected a callback: %s", channel, err.reason)
    counted(channel, "rejected")
    return PlainTextResponse(err.reason, status_code=err.status)


def session_for(channel: str, platform_user: str, secret: bytes) -> str:
    """A stable appliance session per platform user, keyed by the install's secret: the
    platform's id is not stored in clear, and knowing it is not enough to name the session."""
    digest = hmac.new(secret, f"{channel}\0{platform_user}".encode(),
                      hashlib.sha256).hexdigest()[:32]
    return f"{channel}:{digest}"


def session_secret(path: Path) -> bytes:
    """The install's channel-session secret, created (0600) by whoever needs it first:
    written whole under another name, then linked into place, so a replica starting at the
    same moment reads the one secret, never a half-written file."""
    if not path.exists():
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        write_secret(draft, secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process was first: its secret is the one
        finally:
            draft.unlink()
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise ValueError(f"channels.session_secret_file: {path} is not a hex secret of at "
                         "least 16 bytes")
    return secret


def check_timestamp(seconds: float, window_s: int) -> None:
    if abs(time.time() - seconds) > window_s:
        raise Rejected(401, "timestamp outside the allowed window")


def parse_xml(body: bytes) -> ElementTree.Element:
    """No platform sends a DTD: one is refused whatever the encoding (a byte search for
    "<!DOCTYPE" misses a UTF-16 body), and so are entities of any kind."""
    try:
        return defused.fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise Rejected(400, "XML with a DTD or entities is not accepted") from None
    except (ElementTree.ParseError, ValueError):
        raise Rejected(400, "malformed XML") from None


class SeenMessages:
    """Message ids already taken, so a platform's resend is processed once."""

    def __init__(self, ttl_s: float, max_entries: int):
        self._ttl_s = ttl_s
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, message_id: str) -> bool:
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) < now - self._ttl_s:
            self._seen.popitem(last=False)
        if message_id in self._seen:
            return False
        self._seen[message_id] = now
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True


# Replies still owed to a platform in this process, over every channel: a drain waits for
# them as for requests (counted here, not on the adapter, which Ray Serve copies).
OWED: set[asyncio.Task] = set()


def owed_replies() -> int:
    return len(OWED)


class Deliveries:
    """Replies being finished in the background, each counted as owed until it is sent."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)  # keep a reference until it is done
        OWED.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(OWED.discard)

    @property
    def pending(self) -> int:
        return len(self._tasks)


async def answer(responder: Responder, busy_reply: str, channel: str, session_id: str,
                 text: str, persona: str | None) -> str:
    """The responder's reply, or the busy message; never raises."""
    try:
        return await responder.reply(channel, session_id, text, persona)
    except ReplyRefused:
        return busy_reply
    except Exception:
        logger.exception("channel %s: the reply failed", channel)
        return busy_reply


class PlatformError(Exception):
    """A platform API call that failed after retries, or answered with an error code."""


class PlatformClient:
    """The one HTTP client for outbound calls to a platform: base URL from config,
    timeouts, retries with backoff on network errors, 429 and 5xx."""

    def __init__(self, base_url: str, timeout_s: float, retries: int):
        self.base_url = base_url
        self._timeout_s = timeout_s
        self._retries = retries
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:  # created on the serving event loop, not at import
            self._client = httpx.AsyncClient(base_url=self.base_url,
                                             timeout=self._timeout_s)
        return self._client

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = await self._http().request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise PlatformError(f"{method} {path}: {type(exc).__name__}") from None
            else:
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 400:
                        raise PlatformError(f"{method} {path}: HTTP {response.status_code}")
                    try:
                        return response.json()
                    except ValueError:
                        raise PlatformError(f"{method} {path}: not JSON") from None
                if last:
                    raise PlatformError(f"{method} {path}: HTTP {response.status_code}")
            await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class AccessToken:
    """A platform access token, fetched once and reused until shortly before it expires."""

    def __init__(self, fetch: Callable[[], Awaitable[tuple[str, float]]]):
        self._fetch = fetch
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:
            if time.monotonic() >= self._expires:
                token, lifetime_s = await self._fetch()
                self._token, self._expires = token, time.monotonic() + max(lifetime_s - 300, 60)
            return self._token

    def invalidate(self) -> None:
        self._expires = 0.0
