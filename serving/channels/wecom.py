"""WeCom (企业微信) self-built application callback.

GET verifies the callback URL (decrypt `echostr`); POST carries an encrypted message.
A reply ready within `passive_reply_s` goes back encrypted in the response (WeCom
waits 5 s and then resends); a slower one is acknowledged with an empty 200 and sent
through the message/send API when it is ready.
"""

from __future__ import annotations

import secrets
import time
from xml.sax.saxutils import escape

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response

from kernel.channel_config import ChannelsConfig
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
    parse_xml,
    rejection,
)
from serving.channels.wecom_crypto import WeComCrypto, WrongReceiver

NAME = "wecom"


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def reply_xml(to_user: str, from_user: str, content: str, created: int) -> str:
    return (f"<xml><ToUserName>{_cdata(to_user)}</ToUserName>"
            f"<FromUserName>{_cdata(from_user)}</FromUserName>"
            f"<CreateTime>{created}</CreateTime><MsgType>{_cdata('text')}</MsgType>"
            f"<Content>{_cdata(content)}</Content></xml>")


def passive_envelope(crypto: WeComCrypto, inner_xml: str, timestamp: str, nonce: str) -> str:
    encrypted = crypto.encrypt(inner_xml)
    signature = crypto.signature(timestamp, nonce, encrypted)
    return (f"<xml><Encrypt>{_cdata(encrypted)}</Encrypt>"
            f"<MsgSignature>{_cdata(signature)}</MsgSignature>"
            f"<TimeStamp>{escape(timestamp)}</TimeStamp><Nonce>{_cdata(nonce)}</Nonce></xml>")


class WeComAdapter(ChannelAdapter):
    name = NAME

    def __init__(self, channels: ChannelsConfig, responder: Responder):
        self.config = channels.wecom
        super().__init__(channels, responder, persona=self.config.persona,
                         seen=SeenMessages(max(2 * self.config.timestamp_window_s, 3600),
                                           channels.dedup_entries),
                         inline_reply_s=self.config.passive_reply_s)
        self.crypto = WeComCrypto(self.config.token.get_secret_value(),
                                  self.config.encoding_aes_key.get_secret_value(),
                                  self.config.corp_id)
        self.platform = PlatformClient(self.config.api_base_url, channels.outbound_timeout_s,
                                       channels.outbound_retries)
        self.token = AccessToken(self._fetch_token)
        self.router.add_api_route("/callback", self.verify_url, methods=["GET"],
                                  include_in_schema=False)
        self.router.add_api_route("/callback", self.receive, methods=["POST"],
                                  include_in_schema=False)

    def _verified(self, request: Request, encrypted: str) -> tuple[str, str]:
        query = request.query_params
        signature, timestamp, nonce = (query.get("msg_signature"), query.get("timestamp"),
                                       query.get("nonce"))
        if not (signature and timestamp and nonce):
            raise Rejected(400, "msg_signature, timestamp and nonce are required")
        if not self.crypto.verify(signature, timestamp, nonce, encrypted):
            raise Rejected(401, "bad msg_signature")
        return timestamp, nonce

    def _decrypt(self, encrypted: str) -> str:
        try:
            return self.crypto.decrypt(encrypted)
        except WrongReceiver:
            raise Rejected(403, "receive id does not match this corp") from None
        except CipherError as exc:
            raise Rejected(400, f"message does not decrypt: {exc}") from None

    async def verify_url(self, request: Request) -> Response:
        try:
            echostr = request.query_params.get("echostr")
            if not echostr:
                raise Rejected(400, "echostr is required")
            self._verified(request, echostr)
            return PlainTextResponse(self._decrypt(echostr))
        except Rejected as err:
            return rejection(NAME, err)

    async def inbound(self, request: Request) -> Inbound | Ignored:
        outer = parse_xml(await request.body())
        encrypted = outer.findtext("Encrypt")
        if not encrypted:
            raise Rejected(400, "no Encrypt element")
        timestamp, _ = self._verified(request, encrypted)
        try:
            check_timestamp(float(timestamp), self.config.timestamp_window_s)
        except ValueError:
            raise Rejected(400, "timestamp is not a number") from None
        message = parse_xml(self._decrypt(encrypted).encode())
        kind, user = message.findtext("MsgType"), message.findtext("FromUserName")
        text = (message.findtext("Content") or "").strip()
        if kind != "text" or not user or not text:
            return Ignored(f"{kind or 'malformed'} message")
        message_id = message.findtext("MsgId") or f"{user}:{message.findtext('CreateTime')}"
        return Inbound((message_id,), user, text,
                       message.findtext("ToUserName") or self.config.corp_id)

    def acknowledge(self) -> Response:
        return PlainTextResponse("")  # message/send delivers the reply

    def inline(self, message: Inbound, text: str) -> Response:
        inner = reply_xml(message.user, message.context, text, int(time.time()))
        envelope = passive_envelope(self.crypto, inner, str(int(time.time())),
                                    str(secrets.randbelow(10**10)))
        return Response(envelope, media_type="application/xml")

    async def send_later(self, message: Inbound, text: str) -> None:
        await self.send(message.user, text)

    async def _fetch_token(self) -> tuple[str, float]:
        body = await self.platform.call("GET", "/cgi-bin/gettoken", params={
            "corpid": self.config.corp_id, "corpsecret": self.config.secret.get_secret_value()})
        if body.get("errcode", 0) != 0 or not body.get("access_token"):
            raise PlatformError(f"gettoken failed: errcode {body.get('errcode')}")
        return body["access_token"], float(body.get("expires_in", 7200))

    async def send(self, user: str, text: str) -> None:
        """An application message to one user (message/send)."""
        payload = {"touser": user, "msgtype": "text", "agentid": self.config.agent_id,
                   "text": {"content": text}}
        for attempt in range(2):
            token = await self.token.get()
            body = await self.platform.call("POST", "/cgi-bin/message/send",
                                            params={"access_token": token}, json=payload)
            code = body.get("errcode", 0)
            if code in (40014, 42001) and attempt == 0:  # invalid or expired token
                self.token.invalidate()
                continue
            if code != 0:
                raise PlatformError(f"message/send failed: errcode {code}")
            return
