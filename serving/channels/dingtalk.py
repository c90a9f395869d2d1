"""DingTalk (钉钉) robot that receives messages over HTTP.

Each callback is signed (headers `timestamp`, in ms, and `sign`). A reply ready within
`sync_reply_s` goes back in the response body; a slower one is posted to the message's
session webhook, which must lie under the configured API base URL (an attacker-chosen
URL would make the appliance a request forwarder).
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from kernel.channel_config import ChannelsConfig
from serving.channels import dingtalk_sign
from serving.channels.base import ChannelAdapter, Ignored, Inbound
from serving.channels.common import (
    PlatformClient,
    PlatformError,
    Rejected,
    Responder,
    SeenMessages,
    check_timestamp,
)

NAME = "dingtalk"


def text_reply(content: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": content}}


class DingTalkAdapter(ChannelAdapter):
    name = NAME

    def __init__(self, channels: ChannelsConfig, responder: Responder):
        self.config = channels.dingtalk
        super().__init__(channels, responder, persona=self.config.persona,
                         seen=SeenMessages(max(2 * self.config.timestamp_window_s, 3600),
                                           channels.dedup_entries),
                         inline_reply_s=self.config.sync_reply_s)
        self.platform = PlatformClient(self.config.api_base_url, channels.outbound_timeout_s,
                                       channels.outbound_retries)
        self.router.add_api_route("/robot", self.receive, methods=["POST"],
                                  include_in_schema=False)

    def _verify(self, headers: Any) -> None:
        timestamp, signature = headers.get("timestamp"), headers.get("sign")
        if not (timestamp and signature):
            raise Rejected(401, "timestamp and sign headers are required")
        try:
            check_timestamp(int(timestamp) / 1000, self.config.timestamp_window_s)
        except ValueError:
            raise Rejected(400, "timestamp is not a number") from None
        if not dingtalk_sign.verify(signature, timestamp,
                                    self.config.app_secret.get_secret_value()):
            raise Rejected(401, "bad sign")

    async def inbound(self, request: Request) -> Inbound | Ignored:
        self._verify(request.headers)
        message = _message(await request.body())
        if message is None:
            return Ignored("non-text message")
        message_id, user, text, webhook = message
        # DingTalk signs the timestamp alone, not the body: a captured signature replayed
        # with a new msgId (the sender picks it) is the same callback, taken once.
        return Inbound((message_id, f"sign:{request.headers['sign']}"), user, text, webhook)

    def acknowledge(self) -> Response:
        return JSONResponse({})  # the session webhook gets the reply

    def inline(self, message: Inbound, text: str) -> Response:
        return JSONResponse(text_reply(text))

    async def send_later(self, message: Inbound, text: str) -> None:
        await self.send(message.context, text)

    async def send(self, webhook: dict[str, Any], text: str) -> None:
        url, expires_ms = webhook.get("url"), webhook.get("expires_ms")
        base = self.platform.base_url + "/"
        if not isinstance(url, str) or not url.startswith(base):
            raise PlatformError("the session webhook is not under the configured API base URL")
        if isinstance(expires_ms, int) and expires_ms < time.time() * 1000:
            raise PlatformError("the session webhook expired before the reply was ready")
        body = await self.platform.call("POST", url.removeprefix(self.platform.base_url),
                                        json=text_reply(text))
        if body.get("errcode", 0) != 0:
            raise PlatformError(f"session webhook failed: errcode {body.get('errcode')}")


def _message(raw: bytes) -> tuple[str, str, str, dict[str, Any]] | None:
    """(message id, sender, text, session webhook) of a text message, else None."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(400, "malformed JSON") from None
    if not isinstance(body, dict):
        raise Rejected(400, "the body is not a JSON object")
    if body.get("msgtype") != "text":
        return None
    text = (body.get("text") or {}).get("content") if isinstance(body.get("text"), dict) \
        else None
    user = body.get("senderStaffId") or body.get("senderId")
    message_id = body.get("msgId")
    if not (isinstance(text, str) and isinstance(user, str) and isinstance(message_id, str)):
        raise Rejected(400, "text message without msgId, sender or content")
    if not text.strip():
        return None
    webhook = {"url": body.get("sessionWebhook"),
               "expires_ms": body.get("sessionWebhookExpiredTime")}
    return message_id, user, text.strip(), webhook
