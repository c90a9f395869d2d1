"""A local stand-in for the chat platforms' servers: the real WeCom, Feishu and DingTalk
APIs cannot be reached from these machines, so the tests point the appliance's outbound
client here. It implements the documented request and response shapes of the calls the
adapters make (token endpoints, WeCom message/send, Feishu message reply, DingTalk
session webhook), checks their tokens, and records every message it was asked to send.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

from kernel.processes import wait_until

WECOM_SECRET = "wecom-app-secret"
FEISHU_APP_ID = "cli_test_app"
FEISHU_APP_SECRET = "feishu-app-secret"


@dataclass
class Sent:
    platform: str
    to: str
    text: str


@dataclass
class PlatformServer:
    port: int
    sent: list[Sent] = field(default_factory=list)
    token_calls: dict[str, int] = field(default_factory=lambda: {"wecom": 0, "feishu": 0})
    fail_next: int = 0  # answer this many calls with HTTP 502 first (retry tests)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout_s: float = 120) -> list[Sent]:
        with contextlib.suppress(TimeoutError):  # the callers assert on what was sent
            wait_until(lambda: len(self.sent) >= count, timeout_s=timeout_s, interval_s=0.1,
                       what=f"{count} platform calls")
        return list(self.sent)


def _app(server: PlatformServer) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def flaky(request: Request, call_next: Any) -> Any:
        if server.fail_next > 0:
            server.fail_next -= 1
            from fastapi.responses import PlainTextResponse
            return PlainTextResponse("bad gateway", status_code=502)
        return await call_next(request)

    @app.get("/cgi-bin/gettoken")
    async def wecom_token(corpid: str, corpsecret: str) -> dict[str, Any]:
        server.token_calls["wecom"] += 1
        if corpsecret != WECOM_SECRET:
            return {"errcode": 40001, "errmsg": "invalid credential"}
        return {"errcode": 0, "errmsg": "ok", "access_token": f"wecom-token-{corpid}",
                "expires_in": 7200}

    @app.post("/cgi-bin/message/send")
    async def wecom_send(access_token: str, request: Request) -> dict[str, Any]:
        if not access_token.startswith("wecom-token-"):
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        body = await request.json()
        server.sent.append(Sent("wecom", body["touser"], body["text"]["content"]))
        return {"errcode": 0, "errmsg": "ok", "msgid": f"m{len(server.sent)}"}

    @app.post("/open-apis/auth/v3/tenant_access_token/internal")
    async def feishu_token(request: Request) -> dict[str, Any]:
        server.token_calls["feishu"] += 1
        body = await request.json()
        if (body.get("app_id"), body.get("app_secret")) != (FEISHU_APP_ID, FEISHU_APP_SECRET):
            return {"code": 10014, "msg": "app secret invalid"}
        return {"code": 0, "msg": "ok", "tenant_access_token": "t-feishu-token",
                "expire": 7200}

    @app.post("/open-apis/im/v1/messages/{message_id}/reply")
    async def feishu_reply(message_id: str, request: Request) -> dict[str, Any]:
        if request.headers.get("authorization") != "Bearer t-feishu-token":
            return {"code": 99991663, "msg": "invalid access token"}
        body = await request.json()
        if body.get("msg_type") != "text":
            return {"code": 230001, "msg": "unsupported msg_type"}
        text = json.loads(body["content"])["text"]
        server.sent.append(Sent("feishu", message_id, text))
        return {"code": 0, "msg": "success", "data": {"message_id": f"om_r{len(server.sent)}"}}

    @app.post("/robot/sendBySession")
    async def dingtalk_session(session: str, request: Request) -> dict[str, Any]:
        body = await request.json()
        if body.get("msgtype") != "text":
            return {"errcode": 400105, "errmsg": "unsupported msgtype"}
        server.sent.append(Sent("dingtalk", session, body["text"]["content"]))
        return {"errcode": 0, "errmsg": "ok"}

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_platform_server() -> tuple[PlatformServer, uvicorn.Server]:
    server = PlatformServer(free_port())
    config = uvicorn.Config(_app(server), host="127.0.0.1", port=server.port,
                            log_level="warning")
    runner = uvicorn.Server(config)
    threading.Thread(target=runner.run, daemon=True).start()
    wait_until(lambda: runner.started, timeout_s=20, interval_s=0.05,
               what="the platform server's start")
    return server, runner
