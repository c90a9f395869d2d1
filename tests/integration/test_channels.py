"""WeCom, Feishu and DingTalk messages end to end: signed and encrypted callbacks to the
running appliance (real TLS, real router and engines), replies delivered to a local
server that implements the platforms' documented APIs (the real platforms cannot be
reached from here), and the conversation kept in the encrypted store."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from kernel.processes import wait_until
from serving.channels.common import session_for, session_secret
from tests.integration.conftest import REPO, Appliance, free_port
from tests.platform_requests import (
    dingtalk_message,
    feishu_message_event,
    feishu_signed,
    wecom_crypto,
    wecom_message,
)

pytestmark = pytest.mark.integration



def _session(appliance: Appliance, channel: str, user: str,
             config_dir: Path | None = None) -> str:
    """The session the channels name this platform user's (keyed by their install secret,
    beside their config file)."""
    folder = config_dir or appliance.config_path.parent
    return session_for(channel, user, session_secret(folder / "var" / "channel-sessions.key"))

def _export(appliance: Appliance, session: str) -> list[dict]:
    done = appliance.onlycs("conversations", "export", "--session", session)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["messages"]


def _sent_to(appliance: Appliance, platform: str, to: str | None = None) -> list:
    return [s for s in appliance.platform.sent
            if s.platform == platform and (to is None or s.to == to)]


def _wait_sent(appliance: Appliance, platform: str, to: str | None, timeout_s: float = 120
               ) -> list:
    with contextlib.suppress(TimeoutError):  # the callers assert on what was sent
        wait_until(lambda: _sent_to(appliance, platform, to), timeout_s=timeout_s,
                   interval_s=0.2, what=f"a {platform} reply")
    return _sent_to(appliance, platform, to)


def test_wecom_message_gets_exactly_one_reply_and_is_stored(appliance: Appliance) -> None:
    user = f"wecom-user-{time.time_ns()}"
    params, body = wecom_message("What are your opening hours?", user=user)
    client = appliance.http(None)
    response = client.post("/channels/wecom/callback", params=params, content=body)
    assert response.status_code == 200
    resend = client.post("/channels/wecom/callback", params=params, content=body)
    assert resend.status_code == 200 and resend.text == ""
    if response.text:  # answered within WeCom's deadline: an encrypted passive reply
        envelope = ElementTree.fromstring(response.text)
        crypto = wecom_crypto()
        assert crypto.verify(envelope.findtext("MsgSignature"), envelope.findtext("TimeStamp"),
                             envelope.findtext("Nonce"), envelope.findtext("Encrypt"))
        reply = ElementTree.fromstring(crypto.decrypt(envelope.findtext("Encrypt")))
        assert reply.findtext("ToUserName") == user
        text = reply.findtext("Content")
        time.sleep(2)
        assert _sent_to(appliance, "wecom", user) == []
    else:  # slower than the deadline on this machine: delivered through message/send
        sent = _wait_sent(appliance, "wecom", user)
        assert len(sent) == 1
        text = sent[0].text
    assert text
    messages = _export(appliance, _session(appliance, "wecom", user))
    assert [(m["role"], m["content"]) for m in messages[-2:]] == [
        ("user", "What are your opening hours?"), ("assistant", text)]


def test_feishu_message_is_acknowledged_then_replied_through_the_api(
        appliance: Appliance) -> None:
    open_id = f"ou_{time.time_ns()}"
    message_id = f"om_{time.time_ns()}"
    headers, body = feishu_signed(feishu_message_event("Do you ship to Hangzhou?",
                                                       open_id=open_id,
                                                       message_id=message_id))
    client = appliance.http(None)
    started = time.monotonic()
    response = client.post("/channels/feishu/events", headers=headers, content=body)
    assert response.status_code == 200 and response.json() == {}
    acknowledged_s = time.monotonic() - started
    client.post("/channels/feishu/events", headers=headers, content=body)  # a resend
    sent = _wait_sent(appliance, "feishu", message_id)
    time.sleep(1)
    assert len(_sent_to(appliance, "feishu", message_id)) == 1 and sent[0].text
    messages = _export(appliance, _session(appliance, "feishu", open_id))
    assert (messages[-1]["role"], messages[-1]["content"]) == ("assistant", sent[0].text)
    assert messages[-2]["content"] == "Do you ship to Hangzhou?"
    print(f"feishu acknowledged in {acknowledged_s:.3f} s")
    metrics = appliance.http().get("/metrics").text
    for outcome in ("replied_later", "duplicate"):
        assert _sample(metrics, "feishu", outcome) >= 1, outcome


def _sample(metrics: str, channel: str, outcome: str) -> float:
    wanted = f'onlycs_channel_messages_total{{channel="{channel}",outcome="{outcome}"}}'
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith(wanted))


def test_dingtalk_message_is_answered_and_history_carries_over(appliance: Appliance) -> None:
    staff = f"staff-{time.time_ns()}"
    client = appliance.http(None)
    replies = []
    for text in ("Hello, I bought a lamp.", "Can I return it?"):
        headers, body = dingtalk_message(text, appliance.platform.base_url, sender=staff)
        response = client.post("/channels/dingtalk/robot", headers=headers, content=body)
        assert response.status_code == 200
        if response.json():
            assert response.json()["msgtype"] == "text"
            replies.append(response.json()["text"]["content"])
        else:
            before = len(_sent_to(appliance, "dingtalk"))
            wait_until(lambda: len(_sent_to(appliance, "dingtalk")) > before,  # noqa: B023
                       timeout_s=120, interval_s=0.2, what="the late DingTalk reply")
            replies.append(_sent_to(appliance, "dingtalk")[-1].text)
    messages = _export(appliance, _session(appliance, "dingtalk", staff))
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert users == ["Hello, I bought a lamp.", "Can I return it?"]
    assert all(replies)


def test_forged_callbacks_to_the_appliance_are_refused(appliance: Appliance) -> None:
    client = appliance.http(None)
    params, body = wecom_message("hello")
    params["msg_signature"] = "0" * 40
    assert client.post("/channels/wecom/callback", params=params,
                       content=body).status_code == 401
    # Signed with a guessed key: refused on the signature, before anything is decrypted.
    headers, body = feishu_signed(feishu_message_event("hello"), encrypt_key="guessed")
    refused = client.post("/channels/feishu/events", headers=headers, content=body)
    assert (refused.status_code, refused.text) == (401, "callback refused")
    headers, body = dingtalk_message("hello", appliance.platform.base_url, secret="guessed")
    assert client.post("/channels/dingtalk/robot", headers=headers,
                       content=body).status_code == 401
    assert client.get("/readyz").status_code == 200


def test_channels_run_on_their_own_in_front_of_a_backend(appliance: Appliance,
                                                         tmp_path: os.PathLike) -> None:
    """`onlycs channels serve`: only the adapters, backed by an OpenAI-compatible
    endpoint (here the running appliance, over TLS with its API key)."""
    port = free_port()
    config = tmp_path / "channels.toml"
    config.write_text(f'[server]\nport = {port}\n[channels]\nmax_tokens = 16\n'
                      f'[channels.dingtalk]\nenabled = true\n'
                      f'api_base_url = "{appliance.platform.base_url}"\n'
                      f'app_secret = "dingtalk-app-secret"\n')
    env = {**os.environ, "ONLYCS_BACKEND_API_KEY": appliance.client_key}
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "channels", "serve", "--config", str(config),
         "--backend", appliance.base_url, "--backend-ca", str(appliance.ca_file)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200,
                   timeout_s=60, interval_s=0.3, ignore=(httpx.HTTPError,),
                   what="the standalone channels' health")
        staff = f"standalone-{time.time_ns()}"
        # Its own session webhook, so the reply waited for is this message's, not an
        # earlier test's that is still on the platform's list.
        webhook_session = f"standalone-{secrets.token_hex(6)}"
        headers, body = dingtalk_message(
            "What is your phone number?", appliance.platform.base_url, sender=staff,
            webhook=f"{appliance.platform.base_url}/robot/sendBySession?"
                    f"session={webhook_session}")
        response = httpx.post(f"{base}/channels/dingtalk/robot", headers=headers,
                              content=body, timeout=120)
        assert response.status_code == 200, response.text
        if response.json():
            reply = response.json()["text"]["content"]
        else:
            reply = _wait_sent(appliance, "dingtalk", webhook_session)[-1].text
        assert reply
        stored = _export(appliance, _session(appliance, "dingtalk", staff, Path(tmp_path)))
        assert stored[-2]["content"] == "What is your phone number?"
        assert stored[-1]["content"] == reply
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
        assert "dingtalk-app-secret" not in output and appliance.client_key not in output
