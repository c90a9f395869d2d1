"""Feishu/Lark event subscription (schema 2.0, `im.message.receive_v1`).

Feishu wants a 200 within 3 s and resends otherwise, so every message is acknowledged
at once and answered through the reply API when the model is done.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from kernel.channel_config import ChannelsConfig
from serving.channels import feishu_crypto
from serving.channels.base import ChannelAdapter, Ignored, Inbound
from serving.channels.cipher import CipherError
from serving.channels.common import (
    AccessToken,
    PlatformClient,
    PlatformError,
    Rejected,
    Responder,
    SeenMessages,
    check_timestamp,
)

NAME = "feishu"
MESSAGE_EVENT = "im.message.receive_v1"
# Mentions arrive as placeholders such as "@_user_1"; they are not the question.
MENTION = re.compile(r"@_user_\d+\s*")


def _json(raw: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(400, "malformed JSON") from None
    if not isinstance(value, dict):
        raise Rejected(400, "the body is not a JSON object")
    return value


REFUSED = "callback refused"


def refused() -> Rejected:
    """One answer for every refused encrypted callback: a bad signature, a stale timestamp,
    a ciphertext that does not decrypt, a wrong token."""
    return Rejected(401, REFUSED)


class FeishuAdapter(ChannelAdapter):
    name = NAME

    def __init__(self, channels: ChannelsConfig, responder: Responder):
        self.config = channels.feishu
        # Feishu resends for hours after a failure; remember ids for a day. It wants a 200
        # within 3 s, so every reply goes through its API.
        super().__init__(channels, responder, persona=self.config.persona,
                         seen=SeenMessages(86400, channels.dedup_entries),
                         inline_reply_s=None)
        self.encrypt_key = self.config.encrypt_key.get_secret_value()
        self.platform = PlatformClient(self.config.api_base_url, channels.outbound_timeout_s,
                                       channels.outbound_retries)
        self.token = AccessToken(self._fetch_token)
        self.router.add_api_route("/events", self.receive, methods=["POST"],
                                  include_in_schema=False)

    def _event(self, headers: Any, raw: bytes) -> dict[str, Any]:
        """The decrypted event. A signed callback's signature and timestamp are checked
        before anything is decrypted; an unsigned one may only be the URL handshake. Every
        failure from here on is the same answer, so nobody learns from the replies what a
        chosen ciphertext decrypted to (no padding oracle)."""
        body = _json(raw)
        if not self.encrypt_key:
            return body
        if "encrypt" not in body:
            raise Rejected(400, "events must be encrypted (an Encrypt Key is configured)")
        timestamp = headers.get("x-lark-request-timestamp")
        nonce = headers.get("x-lark-request-nonce")
        signature = headers.get("x-lark-signature")
        signed = bool(timestamp and nonce and signature)
        if signed:
            if not feishu_crypto.verify(signature, timestamp, nonce, self.encrypt_key, raw):
                raise refused()
            try:
                check_timestamp(float(timestamp), self.config.timestamp_window_s)
            except (ValueError, Rejected):
                raise refused() from None
        try:
            event = _json(feishu_crypto.decrypt(self.encrypt_key, str(body["encrypt"])))
        except (CipherError, Rejected):
            raise refused() from None
        if not signed and event.get("type") != "url_verification":
            raise refused()  # only the handshake comes unsigned
        return event

    def _check_token(self, token: object) -> None:
        expected = self.config.verification_token.get_secret_value()
        if not isinstance(token, str) or not hmac.compare_digest(token, expected):
            raise refused() if self.encrypt_key else Rejected(
                401, "verification token does not match")

    async def inbound(self, request: Request) -> Inbound | Ignored | Response:
        event = self._event(request.headers, await request.body())
        if event.get("type") == "url_verification":
            self._check_token(event.get("token"))
            return JSONResponse({"challenge": event.get("challenge", "")})
        header = event.get("header")
        if event.get("schema") != "2.0" or not isinstance(header, dict):
            raise Rejected(400, "only schema 2.0 events are supported")
        self._check_token(header.get("token"))
        message = _text_message(header, event.get("event"))
        if message is None:
            return Ignored(f"{header.get('event_type')} event")
        event_id, message_id, user, text = message
        return Inbound((event_id, message_id), user, text, message_id)

    def acknowledge(self) -> Response:
        return JSONResponse({})

    async def send_later(self, message: Inbound, text: str) -> None:
        await self.reply(message.context, text)

    async def _fetch_token(self) -> tuple[str, float]:
        body = await self.platform.call(
            "POST", "/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": self.config.app_id,
                  "app_secret": self.config.app_secret.get_secret_value()})
        if body.get("code") != 0 or not body.get("tenant_access_token"):
            raise PlatformError(f"tenant_access_token failed: code {body.get('code')}")
        return body["tenant_access_token"], float(body.get("expire", 7200))

    async def reply(self, message_id: str, text: str) -> None:
        """Reply in the message's own chat (im/v1 message reply)."""
        token = await self.token.get()
        body = await self.platform.call(
            "POST", f"/open-apis/im/v1/messages/{message_id}/reply",
            headers={"authorization": f"Bearer {token}"},
            json={"msg_type": "text", "content": json.dumps({"text": text},
                                                            ensure_ascii=False)})
        if body.get("code") != 0:
            raise PlatformError(f"message reply failed: code {body.get('code')}")


def _text_message(header: dict[str, Any], event: Any) -> tuple[str, str, str, str] | None:
    """(event id, message id, sender open id, text) of a user's text message, else None."""
    if header.get("event_type") != MESSAGE_EVENT:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("message"), dict):
        raise Rejected(400, "message event without a message")
    message, sender = event["message"], event.get("sender") or {}
    if message.get("message_type") != "text" or sender.get("sender_type") not in (None, "user"):
        return None
    user = (sender.get("sender_id") or {}).get("open_id")
    event_id, message_id = header.get("event_id"), message.get("message_id")
    if not (isinstance(user, str) and isinstance(event_id, str)
            and isinstance(message_id, str)):
        raise Rejected(400, "message event without event_id, message_id or sender")
    try:
        content = json.loads(message.get("content") or "{}")
    except ValueError:
        raise Rejected(400, "message content is not JSON") from None
    text = MENTION.sub("", str(content.get("text", "")) if isinstance(content, dict) else "")
    if not text.strip():
        return None
    if not re.fullmatch(r"[\w-]{1,128}", message_id):
        raise Rejected(400, "malformed message_id")
    return event_id, message_id, user, text.strip()
