"""Channel adapters: the platforms' published test vectors, crypto round trips, every
kind of bad callback, de-duplication of resends, and both reply paths.

The adapters run in-process in front of a recording responder (the model itself is
exercised end to end in tests/integration/test_channels.py); their outbound calls go to
a local server implementing the platforms' documented API shapes, because the real
WeCom, Feishu and DingTalk servers cannot be reached from here.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kernel.config import AppConfig
from serving.channels import feishu_crypto
from serving.channels.cipher import CipherError
from serving.channels.common import (
    ReplyRefused,
    SeenMessages,
    owed_replies,
    session_for,
    session_secret,
)
from serving.channels.standalone import build_app
from serving.channels.wecom_crypto import WeComCrypto, WrongReceiver
from tests.platform_requests import (
    FEISHU,
    channels_toml,
    dingtalk_message,
    feishu_message_event,
    feishu_signed,
    wecom_crypto,
    wecom_message,
)
from tests.platform_server import PlatformServer, start_platform_server

# --- published test vectors -------------------------------------------------------------

# WeCom's callback documentation example (Token, EncodingAESKey, CorpID and requests).
WECOM_DOC = WeComCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
                        "wx5823bf96d3bd56c7")
WECOM_DOC_ECHOSTR = ("P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8Tg"
                     "AE7OaBO+FZXvnaqQ==")
WECOM_DOC_MESSAGE = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdC"
    "Upj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4"
    "Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r"
    "+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Nc"
    "x4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2u"
    "yPIGHBZZIs2pDBS8R07+qN+E7Q==")

REPLY_DEADLINE_S = 0.5  # the channels' reply deadlines in these tests
SLOW_REPLY_S = 1.2  # a reply that misses them


def test_wecom_documented_url_verification_vector() -> None:
    assert WECOM_DOC.verify("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589",
                            "263014780", WECOM_DOC_ECHOSTR)
    assert WECOM_DOC.decrypt(WECOM_DOC_ECHOSTR) == "1616140317555161061"


def test_wecom_documented_message_vector() -> None:
    assert WECOM_DOC.verify("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813",
                            "1372623149", WECOM_DOC_MESSAGE)
    assert not WECOM_DOC.verify("477715d11cdb4164915debcba66cb864d751f3e6", "1409659814",
                                "1372623149", WECOM_DOC_MESSAGE)
    plain = WECOM_DOC.decrypt(WECOM_DOC_MESSAGE)
    assert "<Content><![CDATA[hello]]></Content>" in plain
    assert "<MsgId>4561255354251345929</MsgId>" in plain


def test_feishu_documented_decrypt_vector() -> None:
    vector = "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="
    assert feishu_crypto.decrypt("test key", vector) == "hello world"
    with pytest.raises(CipherError):
        feishu_crypto.decrypt("other key", vector)


# --- round trips and tampering -----------------------------------------------------------

def test_wecom_round_trip_pads_to_32_bytes_and_checks_receiver() -> None:
    for text in ("", "x", "你好，订单在哪里？" * 7, "a" * 32):
        encrypted = WECOM_DOC.encrypt(text)
        assert len(base64.b64decode(encrypted)) % 32 == 0
        assert WECOM_DOC.decrypt(encrypted) == text
    other = WeComCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwOTHER")
    with pytest.raises(WrongReceiver):
        other.decrypt(WECOM_DOC.encrypt("for someone else"))


def test_wecom_tampered_ciphertext_is_refused() -> None:
    raw = bytearray(base64.b64decode(WECOM_DOC.encrypt("hello")))
    raw[-1] ^= 0x01  # breaks the padding of the last block
    with pytest.raises(CipherError):
        WECOM_DOC.decrypt(base64.b64encode(bytes(raw)).decode())
    with pytest.raises(CipherError):
        WECOM_DOC.decrypt("not base64 at all!")


def test_feishu_round_trip_and_signature() -> None:
    text = json.dumps({"hello": "世界"})
    assert feishu_crypto.decrypt("k", feishu_crypto.encrypt("k", text)) == text
    sig = feishu_crypto.signature("1700000000", "n1", "k", b'{"encrypt":"x"}')
    assert feishu_crypto.verify(sig, "1700000000", "n1", "k", b'{"encrypt":"x"}')
    assert not feishu_crypto.verify(sig, "1700000000", "n1", "k", b'{"encrypt":"y"}')


def test_seen_messages_forget_after_ttl_and_stay_bounded() -> None:
    seen = SeenMessages(ttl_s=0.05, max_entries=100)
    assert seen.first_time("a") and not seen.first_time("a")
    time.sleep(0.06)
    assert seen.first_time("a")
    for i in range(500):
        seen.first_time(str(i))
    assert len(seen._seen) <= 100


def test_platform_users_map_to_stable_distinct_sessions() -> None:
    secret = b"s" * 32
    assert session_for("wecom", "zhangsan", secret) == session_for("wecom", "zhangsan", secret)
    assert session_for("wecom", "zhangsan", secret) != session_for("feishu", "zhangsan", secret)
    assert "zhangsan" not in session_for("wecom", "zhangsan", secret)


def test_a_users_session_cannot_be_computed_without_the_installs_secret() -> None:
    # Unkeyed, anyone who knows a WeCom user id could name (and read) that user's session.
    unkeyed = "wecom:" + hashlib.sha256(b"wecom\0zhangsan").hexdigest()[:32]
    mine, theirs = session_for("wecom", "zhangsan", b"a" * 32), session_for(
        "wecom", "zhangsan", b"b" * 32)
    assert len({unkeyed, mine, theirs}) == 3


def test_the_session_secret_is_created_once_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "channel-sessions.key"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: session_secret(path), range(16)))
    assert len(secrets) == 1 and len(secrets.pop()) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["channel-sessions.key"]
    path.write_text("not hex\n")
    with pytest.raises(ValueError, match=r"channels\.session_secret_file"):
        session_secret(path)


# --- the adapters, in front of a recording responder -------------------------------------

class RecordingResponder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.delay_s = 0.0
        self.refuse = False

    async def reply(self, channel: str, session_id: str, text: str,
                    persona: str | None) -> str:
        self.calls.append((channel, session_id, text))
        await asyncio.sleep(self.delay_s)
        if self.refuse:
            raise ReplyRefused("overloaded")
        return f"echo: {text}"


@pytest.fixture(scope="module")
def platform() -> PlatformServer:
    server, runner = start_platform_server()
    yield server
    runner.should_exit = True


@pytest.fixture
def responder() -> RecordingResponder:
    return RecordingResponder()


@pytest.fixture
async def client(platform: PlatformServer, responder: RecordingResponder, tmp_path: Path
                 ) -> AsyncIterator[httpx.AsyncClient]:
    import tomllib

    platform.sent.clear()
    # Short reply deadlines: a "slow" reply here is a fraction of a second, not the
    # platforms' real 3-5 s.
    config = AppConfig.model_validate(tomllib.loads(
        channels_toml(platform.base_url, REPLY_DEADLINE_S, REPLY_DEADLINE_S,
                      str(tmp_path / "channel-sessions.key"))))
    app = build_app(config, responder)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://channels") as http:
        yield http


def _session(channel: str, user: str, tmp_path: Path) -> str:
    """The session the client fixture's channels name this user's."""
    return session_for(channel, user, session_secret(tmp_path / "channel-sessions.key"))


async def _sent(platform: PlatformServer, count: int) -> list:
    for _ in range(200):
        if len(platform.sent) >= count:
            break
        await asyncio.sleep(0.05)
    return list(platform.sent)


async def test_wecom_url_verification_echoes_the_decrypted_echostr(
        client: httpx.AsyncClient) -> None:
    crypto = wecom_crypto()
    echostr = crypto.encrypt("8423947294792")
    ts, nonce = str(int(time.time())), "12345"
    ok = await client.get("/channels/wecom/callback", params={
        "msg_signature": crypto.signature(ts, nonce, echostr), "timestamp": ts,
        "nonce": nonce, "echostr": echostr})
    assert ok.status_code == 200 and ok.text == "8423947294792"
    bad = await client.get("/channels/wecom/callback", params={
        "msg_signature": "0" * 40, "timestamp": ts, "nonce": nonce, "echostr": echostr})
    assert bad.status_code == 401


async def test_wecom_fast_reply_is_an_encrypted_passive_reply(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer, tmp_path: Path) -> None:
    params, body = wecom_message("Where is my order?", user="lisi")
    response = await client.post("/channels/wecom/callback", params=params, content=body)
    assert response.status_code == 200
    from xml.etree import ElementTree
    envelope = ElementTree.fromstring(response.text)
    crypto = wecom_crypto()
    encrypted = envelope.findtext("Encrypt")
    assert crypto.verify(envelope.findtext("MsgSignature"), envelope.findtext("TimeStamp"),
                         envelope.findtext("Nonce"), encrypted)
    inner = ElementTree.fromstring(crypto.decrypt(encrypted))
    assert inner.findtext("ToUserName") == "lisi"
    assert inner.findtext("Content") == "echo: Where is my order?"
    assert responder.calls == [("wecom", _session("wecom", "lisi", tmp_path), "Where is my order?")]
    assert platform.sent == []  # nothing went through message/send


async def test_wecom_slow_reply_is_acknowledged_then_sent(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer) -> None:
    responder.delay_s = SLOW_REPLY_S  # past passive_reply_s
    params, body = wecom_message("A hard question", user="wangwu", msg_id="777")
    response = await client.post("/channels/wecom/callback", params=params, content=body)
    assert response.status_code == 200 and response.text == ""
    # WeCom resends after its deadline: the resend is acknowledged, not processed again.
    again = await client.post("/channels/wecom/callback", params=params, content=body)
    assert again.status_code == 200 and again.text == ""
    sent = await _sent(platform, 1)
    assert [(s.platform, s.to, s.text) for s in sent] == [
        ("wecom", "wangwu", "echo: A hard question")]
    assert len(responder.calls) == 1


async def test_wecom_outbound_retries_a_failing_platform(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer) -> None:
    responder.delay_s = SLOW_REPLY_S
    platform.fail_next = 2  # the first two calls get 502
    params, body = wecom_message("retry me", user="zhaoliu")
    assert (await client.post("/channels/wecom/callback", params=params,
                              content=body)).text == ""
    sent = await _sent(platform, 1)
    assert [s.text for s in sent] == ["echo: retry me"]


@pytest.mark.parametrize("mutation", ["signature", "stale", "tampered", "receiver",
                                      "malformed", "dtd", "dtd-utf16", "no-params"])
async def test_wecom_bad_callbacks_are_refused_and_never_reach_the_model(
        client: httpx.AsyncClient, responder: RecordingResponder, mutation: str) -> None:
    params, body = wecom_message("hello")
    expected = 401
    if mutation == "signature":
        params["msg_signature"] = "f" * 40
    elif mutation == "stale":
        params, body = wecom_message("hello", timestamp=int(time.time()) - 3600)
    elif mutation == "tampered":
        text = body.decode()
        start = text.index("<Encrypt><![CDATA[") + len("<Encrypt><![CDATA[")
        raw = bytearray(base64.b64decode(text[start:text.index("]]>", start)]))
        raw[20] ^= 0xFF
        forged = base64.b64encode(bytes(raw)).decode()
        body = (text[:start] + forged + text[text.index("]]>", start):]).encode()
        params["msg_signature"] = wecom_crypto().signature(params["timestamp"],
                                                           params["nonce"], forged)
        expected = 400
    elif mutation == "receiver":
        other = WeComCrypto("wecomCallbackToken", "a" * 43, "wwSOMEONEELSE")
        params, body = wecom_message("hello", crypto=other)
        expected = 403
    elif mutation == "malformed":
        body, expected = b"<xml><Encrypt>unterminated", 400
    elif mutation == "dtd":
        body = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>'
        expected = 400
    elif mutation == "dtd-utf16":  # no "<!DOCTYPE" among the bytes: a byte search misses it
        body = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
                '<xml><Encrypt>&a;</Encrypt></xml>').encode("utf-16")
        expected = 400
    elif mutation == "no-params":
        params, expected = {}, 400
    response = await client.post("/channels/wecom/callback", params=params, content=body)
    assert response.status_code == expected, response.text
    if mutation.startswith("dtd"):  # refused for the DTD, before any signature is checked
        assert "DTD" in response.text
    assert responder.calls == []


async def test_feishu_url_verification_challenge(client: httpx.AsyncClient) -> None:
    headers, body = feishu_signed({"challenge": "ajls384kdjx98XX", "type": "url_verification",
                                   "token": FEISHU["verification_token"]})
    response = await client.post("/channels/feishu/events", headers=headers, content=body)
    assert response.status_code == 200
    assert response.json() == {"challenge": "ajls384kdjx98XX"}
    headers, body = feishu_signed({"challenge": "x", "type": "url_verification",
                                   "token": "wrong"})
    assert (await client.post("/channels/feishu/events", headers=headers,
                              content=body)).status_code == 401


async def test_feishu_message_is_acknowledged_at_once_and_replied_once(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer, tmp_path: Path) -> None:
    responder.delay_s = 0.3
    event = feishu_message_event("@_user_1 How much is the Aurora lamp?", open_id="ou_abc",
                                 message_id="om_first")
    headers, body = feishu_signed(event)
    first = await client.post("/channels/feishu/events", headers=headers, content=body)
    assert first.status_code == 200 and first.json() == {}
    headers, body = feishu_signed(event)  # the platform's resend of the same event
    assert (await client.post("/channels/feishu/events", headers=headers,
                              content=body)).status_code == 200
    sent = await _sent(platform, 1)
    await asyncio.sleep(0.5)
    assert [(s.platform, s.to, s.text) for s in platform.sent] == [
        ("feishu", "om_first", "echo: How much is the Aurora lamp?")]
    assert sent and responder.calls == [
        ("feishu", _session("feishu", "ou_abc", tmp_path), "How much is the Aurora lamp?")]


async def test_feishu_busy_backend_gets_the_busy_message(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer) -> None:
    responder.refuse = True
    headers, body = feishu_signed(feishu_message_event("hi", message_id="om_busy"))
    assert (await client.post("/channels/feishu/events", headers=headers,
                              content=body)).status_code == 200
    sent = await _sent(platform, 1)
    assert sent[0].text.startswith("Sorry, we are very busy")


@pytest.mark.parametrize("mutation", ["signature", "missing-signature", "stale", "tampered",
                                      "plaintext", "token", "malformed", "not-object"])
async def test_feishu_bad_callbacks_are_refused(
        client: httpx.AsyncClient, responder: RecordingResponder, mutation: str) -> None:
    event = feishu_message_event("hello")
    headers, body = feishu_signed(event)
    expected = 401
    if mutation == "signature":
        headers["x-lark-signature"] = "0" * 64
    elif mutation == "missing-signature":
        del headers["x-lark-signature"]
    elif mutation == "stale":
        headers, body = feishu_signed(event, timestamp=int(time.time()) - 7200)
    elif mutation == "tampered":
        outer = json.loads(body)
        raw = bytearray(base64.b64decode(outer["encrypt"]))
        raw[-1] ^= 0x55
        body = json.dumps({"encrypt": base64.b64encode(bytes(raw)).decode()}).encode()
        headers, body = _resign(headers, body)
    elif mutation == "plaintext":
        body, expected = json.dumps(event).encode(), 400
    elif mutation == "token":
        event["header"]["token"] = "stolen"
        headers, body = feishu_signed(event)
    elif mutation == "malformed":
        headers, body = _resign(headers, b"{not json")
        expected = 400
    elif mutation == "not-object":
        headers, body = _resign(headers, b"[1, 2]")
        expected = 400
    response = await client.post("/channels/feishu/events", headers=headers, content=body)
    assert response.status_code == expected, response.text
    assert responder.calls == []


async def test_feishu_decrypts_nothing_before_the_signature_holds(
        client: httpx.AsyncClient, responder: RecordingResponder, monkeypatch) -> None:
    decrypted: list[str] = []
    real = feishu_crypto.decrypt
    monkeypatch.setattr(feishu_crypto, "decrypt",
                        lambda key, text: decrypted.append(text) or real(key, text))
    headers, body = feishu_signed(feishu_message_event("hello"))
    headers["x-lark-signature"] = "0" * 64
    response = await client.post("/channels/feishu/events", headers=headers, content=body)
    assert response.status_code == 401 and decrypted == [] and responder.calls == []


async def test_feishu_refusals_all_look_alike_no_padding_oracle(
        client: httpx.AsyncClient, responder: RecordingResponder) -> None:
    """Unsigned callbacks (the handshake's form) with a chosen ciphertext: one that does not
    decrypt, one whose padding is wrong, one that decrypts to a message, one to a handshake
    with a wrong token. Replies that differ would tell an attacker what decrypted."""
    def unsigned(ciphertext: str) -> bytes:
        return json.dumps({"encrypt": ciphertext}).encode()

    good = json.loads(feishu_signed(feishu_message_event("hi"))[1])["encrypt"]
    raw = bytearray(base64.b64decode(good))
    raw[-1] ^= 0x01  # the last block's padding byte
    wrong_token = json.loads(feishu_signed({"type": "url_verification", "challenge": "c",
                                            "token": "wrong"})[1])["encrypt"]
    bodies = [unsigned("AAAA"), unsigned(base64.b64encode(bytes(raw)).decode()),
              unsigned(good), unsigned(wrong_token)]
    replies = [await client.post("/channels/feishu/events", content=b,
                                 headers={"content-type": "application/json"})
               for b in bodies]
    assert {(r.status_code, r.text) for r in replies} == {(401, "callback refused")}
    assert responder.calls == []


def _resign(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    headers = dict(headers)
    headers["x-lark-signature"] = feishu_crypto.signature(
        headers["x-lark-request-timestamp"], headers["x-lark-request-nonce"],
        FEISHU["encrypt_key"], body)
    return headers, body


async def test_feishu_unknown_event_types_are_ignored_with_200(
        client: httpx.AsyncClient, responder: RecordingResponder) -> None:
    event = feishu_message_event("hello")
    event["header"]["event_type"] = "contact.user.created_v3"
    headers, body = feishu_signed(event)
    response = await client.post("/channels/feishu/events", headers=headers, content=body)
    assert response.status_code == 200 and responder.calls == []


async def test_dingtalk_fast_reply_in_the_response_body(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer, tmp_path: Path) -> None:
    headers, body = dingtalk_message("Opening hours?", platform.base_url, sender="s-42")
    response = await client.post("/channels/dingtalk/robot", headers=headers, content=body)
    assert response.status_code == 200
    assert response.json() == {"msgtype": "text", "text": {"content": "echo: Opening hours?"}}
    assert responder.calls == [("dingtalk", _session("dingtalk", "s-42", tmp_path),
                                "Opening hours?")]


async def test_dingtalk_slow_reply_goes_to_the_session_webhook_once(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer) -> None:
    responder.delay_s = SLOW_REPLY_S  # past sync_reply_s
    headers, body = dingtalk_message("slow one", platform.base_url, msg_id="ding-1")
    first = await client.post("/channels/dingtalk/robot", headers=headers, content=body)
    assert first.status_code == 200 and first.json() == {}
    resent = await client.post("/channels/dingtalk/robot", headers=headers, content=body)
    assert resent.status_code == 200 and resent.json() == {}
    sent = await _sent(platform, 1)
    assert [(s.platform, s.text) for s in sent] == [("dingtalk", "echo: slow one")]
    assert len(responder.calls) == 1


async def test_dingtalk_session_webhook_outside_the_platform_is_never_called(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer) -> None:
    responder.delay_s = SLOW_REPLY_S
    headers, body = dingtalk_message("hello", platform.base_url,
                                     webhook="http://169.254.169.254/latest/meta-data")
    assert (await client.post("/channels/dingtalk/robot", headers=headers,
                              content=body)).json() == {}
    await asyncio.sleep(SLOW_REPLY_S + 0.5)
    assert platform.sent == [] and len(responder.calls) == 1


async def test_dingtalk_a_replayed_signature_with_a_new_msg_id_is_taken_once(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer) -> None:
    # DingTalk signs the timestamp alone: whoever captured one callback's headers could
    # send any body (and any msgId) under them for the whole window.
    headers, body = dingtalk_message("first", platform.base_url, msg_id="ding-a")
    assert (await client.post("/channels/dingtalk/robot", headers=headers,
                              content=body)).status_code == 200
    forged = json.loads(body) | {"msgId": "ding-b", "text": {"content": "forged"}}
    again = await client.post("/channels/dingtalk/robot", headers=headers,
                              content=json.dumps(forged).encode())
    assert again.status_code == 200 and again.json() == {}
    assert [text for _, _, text in responder.calls] == ["first"]


async def test_dingtalk_refuses_a_callback_signed_ten_minutes_ago(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer) -> None:
    headers, body = dingtalk_message("late", platform.base_url,
                                     timestamp_ms=int((time.time() - 600) * 1000))
    response = await client.post("/channels/dingtalk/robot", headers=headers, content=body)
    assert response.status_code == 401 and "window" in response.text
    assert responder.calls == []


@pytest.mark.parametrize("mutation", ["sign", "missing", "stale", "secret", "malformed",
                                      "no-sender"])
async def test_dingtalk_bad_callbacks_are_refused(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer, mutation: str) -> None:
    headers, body = dingtalk_message("hello", platform.base_url)
    expected = 401
    if mutation == "sign":
        headers["sign"] = base64.b64encode(b"x" * 32).decode()
    elif mutation == "missing":
        del headers["sign"]
    elif mutation == "stale":
        headers, body = dingtalk_message("hello", platform.base_url,
                                         timestamp_ms=int((time.time() - 7200) * 1000))
    elif mutation == "secret":
        headers, body = dingtalk_message("hello", platform.base_url, secret="guessed")
    elif mutation == "malformed":
        body, expected = b"{{{", 400
    elif mutation == "no-sender":
        payload = json.loads(body)
        del payload["senderStaffId"], payload["senderId"]
        body, expected = json.dumps(payload).encode(), 400
    response = await client.post("/channels/dingtalk/robot", headers=headers, content=body)
    assert response.status_code == expected, response.text
    assert responder.calls == []


def test_enabled_channel_with_missing_secrets_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="token"):
        AppConfig.model_validate({"channels": {"wecom": {
            "enabled": True, "corp_id": "ww1", "secret": "s",
            "encoding_aes_key": "a" * 43}}})
    with pytest.raises(ValueError, match="43-character"):
        AppConfig.model_validate({"channels": {"wecom": {
            "enabled": True, "corp_id": "ww1", "secret": "s", "token": "t",
            "encoding_aes_key": "short"}}})
    dumped = AppConfig.model_validate({"channels": {"dingtalk": {
        "enabled": True, "app_secret": "top-secret"}}}).model_dump_json()
    assert "top-secret" not in dumped


async def test_a_reply_owed_to_the_platform_is_counted_until_it_is_sent(
        client: httpx.AsyncClient, responder: RecordingResponder,
        platform: PlatformServer) -> None:
    # What a drain waits for beside running requests (serving/ingress/deployment.py).
    responder.delay_s = SLOW_REPLY_S
    params, body = wecom_message("owed", user="owed-user")
    assert (await client.post("/channels/wecom/callback", params=params,
                              content=body)).status_code == 200
    assert owed_replies() == 1
    await _sent(platform, 1)
    for _ in range(100):
        if owed_replies() == 0:
            break
        await asyncio.sleep(0.02)
    assert owed_replies() == 0


async def test_a_reply_a_stop_cut_off_is_sent_once_on_the_next_start(
        platform: PlatformServer, responder: RecordingResponder, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Acknowledged to the platform, not yet answered, when the appliance stopped: kept in
    the (real, SQLite) store and sent by the next run, and the platform's resend of it
    afterwards is not answered twice."""
    import tomllib

    from kernel.crypto import create_master_key
    from kernel.store.sqlite import SQLiteStore
    from serving.channels.common import OWED
    from serving.channels.hub import channel_adapters
    from serving.channels.outbox import RUN_ENV, StoreOutbox

    platform.sent.clear()
    create_master_key(tmp_path / "master.key")
    store = SQLiteStore(tmp_path / "c.db", tmp_path / "master.key")
    config = AppConfig.model_validate(tomllib.loads(channels_toml(
        platform.base_url, REPLY_DEADLINE_S, REPLY_DEADLINE_S,
        str(tmp_path / "channel-sessions.key"))))

    def started(run: str) -> tuple[httpx.AsyncClient, object]:
        monkeypatch.setenv(RUN_ENV, run)
        app = build_app(config, responder, StoreOutbox(lambda: store, 3600))
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://channels"), app

    responder.delay_s = 60  # still generating when the stop comes
    first, _ = started("run-1")
    params, body = wecom_message("where is my order?", user="cut-off", msg_id="777")
    assert (await first.post("/channels/wecom/callback", params=params,
                             content=body)).status_code == 200
    for task in list(OWED):  # the stop: the process and its tasks are gone
        task.cancel()
    await asyncio.sleep(0.05)
    assert platform.sent == []

    responder.delay_s = 0
    second, app = started("run-2")
    assert await channel_adapters(app)["wecom"].resend_owed() == 1
    sent = await _sent(platform, 1)
    assert [(s.platform, s.to, s.text) for s in sent] == [
        ("wecom", "cut-off", "echo: where is my order?")]
    for _ in range(100):
        if owed_replies() == 0:
            break
        await asyncio.sleep(0.02)
    assert store.claim_owed_replies("wecom", "run-3", 3600) == []  # settled
    # WeCom resends a message it got no answer to: this one has been answered.
    assert (await second.post("/channels/wecom/callback", params=params,
                              content=body)).status_code == 200
    await asyncio.sleep(REPLY_DEADLINE_S)
    assert len(platform.sent) == 1
    assert [c[2] for c in responder.calls] == ["where is my order?"] * 2
    await first.aclose()
    await second.aclose()
