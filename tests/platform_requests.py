"""Callbacks as the chat platforms send them: signed and encrypted per each platform's
published specification, built with the same settings the test appliance uses."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from serving.channels import dingtalk_sign, feishu_crypto
from serving.channels.wecom_crypto import WeComCrypto

WECOM = {"corp_id": "ww0123456789abcdef", "agent_id": 1000002,
         "token": "wecomCallbackToken", "encoding_aes_key": "a" * 43}
FEISHU = {"verification_token": "feishuVerificationToken", "encrypt_key": "feishuEncryptKey"}
DINGTALK = {"app_secret": "dingtalk-app-secret"}


def channels_toml(platform_base_url: str, wecom_passive_s: float = 4.0,
                  dingtalk_sync_s: float = 3.0, session_secret_file: str | None = None) -> str:
    from tests.platform_server import FEISHU_APP_ID, FEISHU_APP_SECRET, WECOM_SECRET

    return f"""
[channels]
max_tokens = 24
{f'session_secret_file = "{session_secret_file}"' if session_secret_file else ""}
[channels.wecom]
enabled = true
api_base_url = "{platform_base_url}"
corp_id = "{WECOM['corp_id']}"
agent_id = {WECOM['agent_id']}
secret = "{WECOM_SECRET}"
token = "{WECOM['token']}"
encoding_aes_key = "{WECOM['encoding_aes_key']}"
passive_reply_s = {wecom_passive_s}
[channels.feishu]
enabled = true
api_base_url = "{platform_base_url}"
app_id = "{FEISHU_APP_ID}"
app_secret = "{FEISHU_APP_SECRET}"
verification_token = "{FEISHU['verification_token']}"
encrypt_key = "{FEISHU['encrypt_key']}"
[channels.dingtalk]
enabled = true
api_base_url = "{platform_base_url}"
app_secret = "{DINGTALK['app_secret']}"
sync_reply_s = {dingtalk_sync_s}
"""


def wecom_crypto() -> WeComCrypto:
    return WeComCrypto(WECOM["token"], WECOM["encoding_aes_key"], WECOM["corp_id"])


def wecom_message(text: str, user: str = "zhangsan", msg_id: str | None = None,
                  timestamp: int | None = None, crypto: WeComCrypto | None = None
                  ) -> tuple[dict[str, str], bytes]:
    """(query parameters, body) of a WeCom text-message callback."""
    crypto = crypto or wecom_crypto()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    inner = (f"<xml><ToUserName><![CDATA[{WECOM['corp_id']}]]></ToUserName>"
             f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{ts}</CreateTime>"
             f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
             f"<MsgId>{msg_id or secrets.randbelow(10**18)}</MsgId>"
             f"<AgentID>{WECOM['agent_id']}</AgentID></xml>")
    encrypted = crypto.encrypt(inner)
    nonce = str(secrets.randbelow(10**9))
    params = {"msg_signature": crypto.signature(ts, nonce, encrypted), "timestamp": ts,
              "nonce": nonce}
    body = (f"<xml><ToUserName><![CDATA[{WECOM['corp_id']}]]></ToUserName>"
            f"<AgentID><![CDATA[{WECOM['agent_id']}]]></AgentID>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>").encode()
    return params, body


def feishu_signed(payload: dict[str, Any], timestamp: int | None = None,
                  encrypt_key: str | None = None) -> tuple[dict[str, str], bytes]:
    """(headers, body) of an encrypted, signed Feishu event callback."""
    key = encrypt_key or FEISHU["encrypt_key"]
    body = json.dumps({"encrypt": feishu_crypto.encrypt(key, json.dumps(payload))}).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = secrets.token_hex(8)
    return {"x-lark-request-timestamp": ts, "x-lark-request-nonce": nonce,
            "x-lark-signature": feishu_crypto.signature(ts, nonce, key, body),
            "content-type": "application/json"}, body


def feishu_message_event(text: str, open_id: str = "ou_test_user",
                         event_id: str | None = None,
                         message_id: str | None = None) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "header": {"event_id": event_id or secrets.token_hex(16),
                   "event_type": "im.message.receive_v1",
                   "create_time": str(int(time.time() * 1000)),
                   "token": FEISHU["verification_token"], "app_id": "cli_test_app",
                   "tenant_key": "tenant"},
        "event": {"sender": {"sender_id": {"open_id": open_id}, "sender_type": "user"},
                  "message": {"message_id": message_id or f"om_{secrets.token_hex(12)}",
                              "chat_id": "oc_chat", "chat_type": "p2p",
                              "message_type": "text",
                              "content": json.dumps({"text": text})}},
    }


def dingtalk_message(text: str, platform_base_url: str, sender: str = "staff-001",
                     msg_id: str | None = None, timestamp_ms: int | None = None,
                     secret: str | None = None, webhook: str | None = None
                     ) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a signed DingTalk robot callback."""
    ts = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    session = secrets.token_hex(8)
    body = {"msgtype": "text", "text": {"content": text},
            "msgId": msg_id or secrets.token_hex(12), "createAt": int(ts),
            "conversationType": "1", "conversationId": "cid-test",
            "senderId": "$:LWCP_v1:$abc", "senderStaffId": sender, "senderNick": "Test",
            "chatbotUserId": "bot",
            "sessionWebhook": webhook or f"{platform_base_url}/robot/sendBySession?"
                                         f"session={session}",
            "sessionWebhookExpiredTime": int(time.time() * 1000) + 3_600_000}
    return ({"timestamp": ts, "sign": dingtalk_sign.sign(ts, secret or DINGTALK["app_secret"]),
             "content-type": "application/json"}, json.dumps(body).encode())
