"""API keys, scopes, rate limits, admission control, TLS 1.3 only, body-size limit:
against the running appliance, over real TLS handshakes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import stat
import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.conftest import Appliance, create_key

pytestmark = pytest.mark.integration

ONE_TOKEN = {"model": "small", "prompt": "Hello", "max_tokens": 1}


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_requests_without_a_valid_key_get_401(appliance: Appliance) -> None:
    anonymous = appliance.http(None)
    assert _error(anonymous.post("/v1/completions", json=ONE_TOKEN), 401)["code"] == \
        "missing_api_key"
    assert _error(anonymous.get("/v1/models"), 401)["type"] == "authentication_error"
    # Auth comes before validation: no key, broken body -> still 401.
    _error(anonymous.post("/v1/chat/completions", content=b"{"), 401)
    forged = appliance.http(appliance.client_key[:-4] + "AAAA")
    assert _error(forged.post("/v1/completions", json=ONE_TOKEN), 401)["code"] == \
        "invalid_api_key"
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200


def test_admin_endpoint_needs_admin_scope(appliance: Appliance) -> None:
    assert _error(appliance.http().get("/admin/config"), 403)["code"] == "insufficient_scope"
    config = appliance.http("admin").get("/admin/config")
    assert config.status_code == 200 and config.json()["security"]["auth"] == "on"


def test_keys_are_stored_hashed_and_private(appliance: Appliance) -> None:
    keys_file = appliance.config_path.parent / "keys.json"
    text = keys_file.read_text()
    secret = appliance.client_key.split("-", 2)[2]
    assert secret not in text and appliance.client_key not in text
    assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
    listed = appliance.onlycs("keys", "list")
    assert "tests-admin" in listed.stdout and secret not in listed.stdout


def test_revoked_key_stops_working_without_restart(appliance: Appliance) -> None:
    key = create_key(appliance.config_path, "short-lived")
    assert appliance.http(key).get("/v1/models").status_code == 200
    revoked = appliance.onlycs("keys", "revoke", "short-lived")
    assert revoked.returncode == 0, revoked.stderr
    assert _error(appliance.http(key).get("/v1/models"), 401)["code"] == "invalid_api_key"


def test_rate_limited_key_gets_429_while_others_are_served(appliance: Appliance) -> None:
    key = create_key(appliance.config_path, "limited", "--rpm", "3")
    limited = appliance.http(key)
    statuses = [limited.post("/v1/completions", json=ONE_TOKEN) for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    for refused in statuses[3:]:
        assert _error(refused, 429)["code"] == "rate_limit_exceeded"
        assert int(refused.headers["retry-after"]) >= 1
    assert appliance.http().post("/v1/completions", json=ONE_TOKEN).status_code == 200


def test_overload_gets_503_with_retry_after_never_a_hang(appliance: Appliance) -> None:
    """Fill the small tier to its admission bound with streams that are visibly being
    served, then knock: the extra requests are refused (two after their 2 s in line, the
    third at once: the line holds two, see the test config), and once the streams go away
    the tier admits again."""
    bound = 40  # limits.max_pending_per_tier in the test config
    hold = {"model": "small", "max_tokens": 2000, "ignore_eos": True, "stream": True,
            "messages": [{"role": "user", "content": "Tell me a very long story."}]}
    knock = {"model": "small", "max_tokens": 4,
             "messages": [{"role": "user", "content": "Hello"}]}

    async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
        async with httpx.AsyncClient(base_url=appliance.base_url, timeout=300,
                                     verify=appliance.trust(),
                                     headers={"authorization": f"Bearer {appliance.admin_key}"},
                                     limits=httpx.Limits(max_connections=bound + 8)) as client:
            async def open_stream() -> tuple[httpx.Response, AsyncIterator[str]]:
                request = client.build_request("POST", "/v1/chat/completions", json=hold)
                response = await client.send(request, stream=True)
                assert response.status_code == 200
                # Keep the line iterator alive: a finalised one closes the connection.
                lines = response.aiter_lines()
                async for line in lines:
                    if line.startswith("data:"):
                        assert '"choices"' in line, line
                        break  # admitted and generating
                return response, lines

            streams = await asyncio.gather(*(open_stream() for _ in range(bound)))
            assert appliance.tier_stats("small")["unfinished_requests"] == bound
            refused = await asyncio.gather(*(client.post("/v1/chat/completions", json=knock)
                                             for _ in range(3)))
            for stream, _ in streams:
                await stream.aclose()
            admitted = await client.post("/v1/chat/completions", json=knock)
            for _ in range(40):  # the ingress sees the disconnects within moments
                if admitted.status_code != 503:
                    break
                await asyncio.sleep(0.5)
                admitted = await client.post("/v1/chat/completions", json=knock)
            return refused, admitted

    refused, admitted = asyncio.run(scenario())
    for response in refused:
        assert _error(response, 503)["code"] == "overloaded"
        assert int(response.headers["retry-after"]) >= 1
    assert admitted.status_code == 200, admitted.text


def _port(appliance: Appliance) -> str:
    return appliance.base_url.rsplit(":", 1)[1]


@pytest.mark.parametrize(("flag", "accepted"), [("-tls1_2", False), ("-tls1_3", True)])
def test_only_tls13_handshakes_succeed(appliance: Appliance, flag: str, accepted: bool) -> None:
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{_port(appliance)}", flag,
         "-CAfile", str(appliance.ca_file), "-verify_return_error"],
        input="", capture_output=True, text=True, timeout=30)
    output = done.stdout + done.stderr
    assert "CONNECTED(" in output, output  # the port answered: any refusal is TLS's own
    if accepted:
        assert done.returncode == 0, output
        assert "Protocol  : TLSv1.3" in output or "New, TLSv1.3" in output, output
        return
    assert done.returncode != 0, output
    # The server refused the TLS 1.2 ClientHello itself: it sent no ServerHello (read 0
    # bytes) and no cipher was agreed. Ray's proxy runs on uvloop, whose TLS transport
    # closes on a failed handshake without flushing OpenSSL's "protocol version" alert;
    # accept that alert too, should a later uvloop send it.
    refused_hello = re.search(r"SSL handshake has read 0 bytes and written [1-9]\d* bytes",
                              output)
    assert refused_hello or "alert protocol version" in output, output
    assert "Cipher is (NONE)" in output, output


def test_python_tls12_client_is_refused(appliance: Appliance) -> None:
    context = ssl.create_default_context(cafile=str(appliance.ca_file))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError, match="SSL"), \
            httpx.Client(verify=context, base_url=appliance.base_url) as client:
        client.get("/healthz")


def test_plain_http_is_not_served(appliance: Appliance) -> None:
    assert appliance.http().get("/healthz").status_code == 200  # the port serves TLS
    plain = appliance.base_url.replace("https://", "http://")
    try:
        status = httpx.get(f"{plain}/healthz", timeout=10).status_code
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return  # the TLS server dropped the plain-text request: no answer at all
    assert status == 400  # a TLS server answering plain text with an error, never 200


def test_oversized_bodies_get_413_before_being_read(appliance: Appliance) -> None:
    big = json.dumps({"model": "small", "prompt": "x" * 300_000}).encode()
    assert _error(appliance.http().post("/v1/completions", content=big,
                                        headers={"content-type": "application/json"}),
                  413)["code"] == "request_too_large"

    def chunks():  # no Content-Length: refused once the stream passes the limit
        for _ in range(40):
            yield b"x" * 16384

    refused = appliance.http().post("/v1/completions", content=chunks(),
                                    headers={"content-type": "application/json"})
    _error(refused, 413)
    assert appliance.http().post("/v1/completions", json=ONE_TOKEN).status_code == 200
