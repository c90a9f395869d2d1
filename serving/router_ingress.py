"""The Router ingress: OpenAI-compatible HTTP API in front of the two tiers.

It holds only deployment handles; it never imports an engine. Every request is
validated and capped here, so bad input is answered without reaching a model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.config import AppConfig
from appliance.conversations import ConversationStore, Message
from appliance.errors import APIError
from appliance.gpu import GPUCollector
from serving import metrics
from serving.access import AccessControl, Caller
from serving.adapters import AdapterControl
from serving.channel_pipeline import PipelineResponder
from serving.channels.hub import BoundLater, mount_channels
from serving.context import persona_name, persona_prompt, trimmed, with_context
from serving.http_metrics import RequestMetricsMiddleware
from serving.protocol import ChatRequest, CompletionRequest
from serving.refusal import REFUSAL, refusal_body, refusal_stream
from serving.router.rules import RulesError, as_dict, dump_tree
from serving.routing import TIERS, RouteDecision, Routing
from serving.safety import OutputFilter, SSEFilter, mask_response
from serving.turns import StreamedReply, reply_text, request_messages, session_id_for

logger = logging.getLogger(__name__)

ROUTE_HEADER = "x-onlycs-route"
SESSION_RESPONSE_HEADER = "x-onlycs-session"
READY_TIMEOUT_S = 5.0
DRAIN_RETRY_AFTER_S = 5
OVERLOAD_RETRY_AFTER_S = 2
VERSION = "0.1.0"


def _error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"] if p != "body"]
    param = ".".join(loc) or None
    if first["type"] == "json_invalid":
        param, message = None, "request body is not valid JSON"
    else:
        message = f"{param}: {first['msg']}" if param else first["msg"]
    return _error_response(APIError(400, message, param=param, code="invalid_value"))


def _api_error(_: Request, exc: APIError) -> JSONResponse:
    return _error_response(exc)


def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    # FastAPI's own 404/405 answers, in OpenAI's shape like every other error.
    return _error_response(APIError(exc.status_code, str(exc.detail),
                                    headers=dict(exc.headers or {})))


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.headers.get("x-request-id", "-")
    logger.exception("request %s failed", request_id, exc_info=exc)
    return _error_response(APIError(500, "internal error; see the appliance log",
                                    code="internal_error"))


def build_fastapi(docs_enabled: bool) -> FastAPI:
    app = FastAPI(
        title="OnlyCS appliance",
        version="0.1.0",
        docs_url="/docs" if docs_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs_enabled else None,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(RequestMetricsMiddleware)
    return app


class Router:
    """Deployment body: routes, caps and forwards requests to a tier."""

    def __init__(self, config: AppConfig, small: DeploymentHandle, large: DeploymentHandle):
        self.config = config
        self.handles = {"small": small, "large": large}
        self.created = int(time.time())
        self._in_flight = 0
        self._draining = False
        self._gpu = GPUCollector()
        self.access = AccessControl(config)
        self.routing = Routing(config)
        self.adapters = AdapterControl(config, small)
        self.output_filter = OutputFilter(self.routing.engine.matcher)
        self._pending = dict.fromkeys(TIERS, 0)
        store = config.store
        self.store = (ConversationStore(store.path, store.master_key_file, store.cipher)
                      if store.enabled else None)
        metrics.BUILD_INFO.labels(VERSION, config.profile).set(1)
        for tier in TIERS:
            metrics.IN_FLIGHT.labels(tier)

    # -- draining: SIGTERM stops new work, lets started work finish -------------------

    async def begin_drain(self) -> int:
        self._draining = True
        return self._in_flight

    async def in_flight(self) -> int:
        return self._in_flight

    # -- decisions made before any engine is involved ------------------------------

    def decide(self, req: ChatRequest | CompletionRequest,
               session_id: str | None) -> RouteDecision:
        history = ([m for m in _user_texts(req)][:-1] if isinstance(req, ChatRequest) else [])
        return self.routing.route(req.model or "auto", req.last_user_text(),
                                  session_id=session_id, history=history)

    def capped_max_tokens(self, req: ChatRequest | CompletionRequest) -> int:
        """The output cap for this request; out-of-range asks are a 400."""
        limits = self.config.limits
        requested = getattr(req, "max_completion_tokens", None) or req.max_tokens
        if requested is not None and requested > limits.max_tokens_limit:
            raise APIError(400, f"max_tokens must be at most {limits.max_tokens_limit}",
                           param="max_tokens", code="invalid_value")
        if req.n > limits.max_n:
            raise APIError(400, f"n must be at most {limits.max_n}", param="n",
                           code="invalid_value")
        return requested or limits.default_max_tokens

    @staticmethod
    def engine_body(req: ChatRequest | CompletionRequest, tier: str,
                    max_tokens: int) -> dict[str, Any]:
        body = req.model_dump(exclude_unset=True)
        body.pop("max_completion_tokens", None)
        body["model"] = tier
        body["max_tokens"] = max_tokens
        return body

    # -- forwarding -----------------------------------------------------------------

    def admit(self, tier: str) -> None:
        """Global admission control: a bounded number of requests per tier."""
        if self._pending[tier] >= self.config.limits.max_pending_per_tier:
            raise APIError(503, f"The {tier} tier is at capacity; retry shortly",
                           code="overloaded", headers={"Retry-After": str(OVERLOAD_RETRY_AFTER_S)})

    async def prepare_chat(self, req: ChatRequest, headers: Any,
                           caller: Caller) -> tuple[ChatRequest, PendingTurn | None]:
        """Add persona and stored history; name the turn the store will keep."""
        sessions = self.config.sessions
        system = persona_prompt(sessions, persona_name(headers, req, caller.persona))
        if self.store is None:
            return with_context(req, system, []), None
        session_id = session_id_for(headers, req)
        known = await asyncio.to_thread(self.store.has_session, session_id)
        history: list[dict] = []
        if known and not any(m.role == "assistant" for m in req.messages):
            stored = await asyncio.to_thread(self.store.recent, session_id,
                                             sessions.history_messages)
            history = trimmed(stored, sessions.history_chars)
        own = with_context(req, system, [])
        turn = PendingTurn(session_id, request_messages(own, new_session=not known))
        return with_context(req, system, history), turn

    async def _save(self, turn: PendingTurn, reply: str) -> None:
        """Commit the turn before the client sees its end: acknowledged means stored."""
        assert self.store is not None
        try:
            await asyncio.to_thread(self.store.append_turn, turn.session_id,
                                    [*turn.messages, Message("assistant", reply)])
        except Exception:
            logger.exception("conversation store write failed")
            raise APIError(500, "the conversation could not be stored; nothing was "
                           "acknowledged", code="store_error") from None

    async def forward(self, method: str, req: ChatRequest | CompletionRequest,
                      caller: Caller, turn: PendingTurn | None = None) -> Any:
        if self._draining:
            raise APIError(503, "the appliance is shutting down; retry on another node",
                           code="draining", headers={"Retry-After": str(DRAIN_RETRY_AFTER_S)})
        max_tokens = self.capped_max_tokens(req)
        started = time.perf_counter()
        decision = self.decide(req, turn.session_id if turn else None)
        metrics.ROUTER_DECISION.observe(time.perf_counter() - started)
        if decision.tier is None:
            return await self.refuse(req, decision, turn)
        self.admit(decision.tier)
        self.access.charge(caller, _estimated_prompt_tokens(req) + max_tokens * req.n)
        metrics.ROUTING_DECISIONS.labels(decision.tier, decision.rule).inc()
        adapter = self.adapters.resolve(decision.tier, decision.adapter)
        if adapter != decision.adapter:
            decision = replace(decision, adapter=adapter)
        body = self.engine_body(req, adapter or decision.tier, max_tokens)
        if decision.masked_text is not None:
            _replace_last_user_text(body, decision.masked_text)
        if turn is not None:
            body["user"] = turn.session_id  # the tiers' session-affinity router reads it
        headers = {ROUTE_HEADER: decision.header()}
        if turn is not None:
            headers[SESSION_RESPONSE_HEADER] = turn.session_id
        self._begin(decision.tier)
        streaming = False
        try:
            handle = self.handles[decision.tier].options(stream=True)
            stream: DeploymentResponseGenerator = getattr(handle, method).remote(body)
            try:
                first = await stream.__anext__()
            except StopAsyncIteration:
                raise APIError(500, "the model engine returned nothing") from None
            if isinstance(first, dict):
                stream.cancel()
                if first["status"] == 200:
                    mask_response(self.output_filter, first["body"])
                if turn is not None and first["status"] == 200:
                    await self._save(turn, reply_text(first["body"]))
                return JSONResponse(first["body"], status_code=first["status"], headers=headers)
            streaming = True
            return StreamingResponse(self._relay(decision.tier, first, stream, turn),
                                     media_type="text/event-stream", headers=headers)
        finally:
            if not streaming:
                self._end(decision.tier)

    async def refuse(self, req: ChatRequest | CompletionRequest, decision: RouteDecision,
                     turn: PendingTurn | None) -> Any:
        """A blocked message gets a polite answer from the appliance; no engine sees it."""
        metrics.BLOCKED.labels(decision.rule.removeprefix("blocked.")).inc()
        metrics.ROUTING_DECISIONS.labels("none", decision.rule).inc()
        headers = {ROUTE_HEADER: decision.header()}
        if turn is not None:
            headers[SESSION_RESPONSE_HEADER] = turn.session_id
            await self._save(turn, REFUSAL)
        if req.stream:
            return StreamingResponse(refusal_stream(req, REFUSAL),
                                     media_type="text/event-stream", headers=headers)
        return JSONResponse(refusal_body(req, REFUSAL), headers=headers)

    def _begin(self, tier: str) -> None:
        self._in_flight += 1
        self._pending[tier] += 1
        metrics.IN_FLIGHT.labels(tier).inc()

    def _end(self, tier: str) -> None:
        self._in_flight -= 1
        self._pending[tier] -= 1
        metrics.IN_FLIGHT.labels(tier).dec()

    async def _relay(self, tier: str, first: str, stream: DeploymentResponseGenerator,
                     turn: PendingTurn | None) -> AsyncIterator[str]:
        """Pass SSE chunks through; a client gone mid-stream cancels the engine request.

        With a conversation to keep, the turn is stored before `[DONE]` goes out.
        """
        finished = False
        reply = StreamedReply()
        sse_filter = SSEFilter(self.output_filter)
        try:
            async for raw in _prepend(first, stream):
                chunk = sse_filter.rewrite(raw)
                if turn is not None and chunk.startswith("data: [DONE]"):
                    try:
                        await self._save(turn, reply.text)
                    except APIError as err:
                        yield f"data: {json.dumps(err.body())}\n\n"
                        finished = True
                        return
                elif turn is not None:
                    reply.feed(chunk)
                yield chunk
            finished = True
        finally:
            self._end(tier)
            if not finished:
                stream.cancel()

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        async def probe(tier: str) -> dict[str, Any]:
            try:
                handle = self.handles[tier]
                await asyncio.wait_for(handle.check_health.remote(), READY_TIMEOUT_S)
                stats = await asyncio.wait_for(handle.stats.remote(), READY_TIMEOUT_S)
                return {"ready": True, **stats}
            except Exception as exc:  # any failure means "not ready", never a 500
                return {"ready": False, "error": type(exc).__name__}

        results = await asyncio.gather(*(probe(t) for t in TIERS))
        tiers = dict(zip(TIERS, results, strict=True))
        return all(r["ready"] for r in results), tiers


class AdapterLoad(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Name requests use: model `small:<name>`.")
    path: str = Field(description="Adapter folder, inside the adapters root.")
    default: bool = Field(False, description="Also make it the small tier's default.")


class AdapterDefault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(description="A loaded adapter, or null for the base model.")


@dataclass(frozen=True)
class PendingTurn:
    session_id: str
    messages: list[Message]


async def _prepend(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    yield first
    async for item in rest:
        yield item


def _user_texts(req: ChatRequest) -> list[str]:
    return [m.content if isinstance(m.content, str) else "" for m in req.messages
            if m.role == "user"]


def _replace_last_user_text(body: dict[str, Any], text: str) -> None:
    if "messages" in body:
        for message in reversed(body["messages"]):
            if message.get("role") == "user":
                message["content"] = text
                return
    elif isinstance(body.get("prompt"), str):
        body["prompt"] = text


def _caller(request: Request) -> Caller:
    # A dependency, so the key is checked before the body is validated: a caller
    # without a valid key learns nothing about the API from 400s.
    return request.app.state.access.caller(request.headers)


def _admin(request: Request) -> Caller:
    return request.app.state.access.caller(request.headers, admin=True)


CallerDep = Annotated[Caller, Depends(_caller)]
AdminDep = Annotated[Caller, Depends(_admin)]


def _estimated_prompt_tokens(req: ChatRequest | CompletionRequest) -> int:
    # ~4 characters per token: good enough to budget, no tokenizer in the router.
    if isinstance(req, ChatRequest):
        size = sum(len(str(m.content or "")) for m in req.messages)
    else:
        size = len(str(req.prompt))
    return size // 4 + 1


def make_router_deployment(config: AppConfig) -> Any:
    """The Router as a Serve deployment, with its FastAPI app built for this config."""
    app = build_fastapi(config.server.docs_enabled)
    channel_responder = BoundLater()
    mount_channels(app, config.channels, channel_responder)

    @serve.deployment(name="router")
    @serve.ingress(app)
    class RouterDeployment(Router):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            app.state.access = self.access
            channel_responder.target = PipelineResponder(self)

        @app.get("/healthz")
        async def healthz(self) -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/readyz")
        async def readyz(self) -> JSONResponse:
            ready, tiers = await self.readiness()
            ready = ready and not self._draining
            body = {"status": "ready" if ready else "not_ready", "tiers": tiers}
            return JSONResponse(body, status_code=200 if ready else 503)

        if config.server.metrics_enabled:
            @app.get("/metrics", include_in_schema=False)
            async def prometheus_metrics(self, request: Request) -> Response:
                if self.access.metrics_require_key:
                    _caller(request)
                return Response(metrics.render([self._gpu]), media_type=CONTENT_TYPE_LATEST)

        @app.get("/admin/config")
        async def admin_config(self, _: AdminDep) -> dict[str, Any]:
            """The running configuration (admin scope)."""
            return self.config.model_dump(mode="json")

        @app.get("/admin/router/rules")
        async def get_rules(self, _: AdminDep) -> Response:
            """The routing rule file in force (admin scope)."""
            return Response(dump_tree(as_dict(self.routing.engine.rules.root)),
                            media_type="application/yaml")

        @app.post("/admin/router/rules")
        async def reload_rules(self, request: Request, _: AdminDep) -> dict[str, Any]:
            """Validate a new rule file and swap it in; a bad one changes nothing (400)."""
            text = (await request.body()).decode("utf-8", errors="replace")
            try:
                tree = self.routing.engine.reload_rules(text)
            except RulesError as exc:
                raise APIError(400, f"rule file rejected: {exc}", code="invalid_rules") from None
            return {"status": "reloaded", "features": sorted(tree.referenced)}

        @app.get("/admin/adapters")
        async def list_adapters(self, _: AdminDep) -> dict[str, Any]:
            return self.adapters.describe()

        @app.post("/admin/adapters")
        async def load_adapter(self, body: AdapterLoad, _: AdminDep) -> dict[str, Any]:
            """Validate and load an adapter from under the adapters root (admin scope)."""
            return await self.adapters.load(body.name, body.path, body.default)

        @app.delete("/admin/adapters/{name}")
        async def unload_adapter(self, name: str, _: AdminDep) -> dict[str, Any]:
            return await self.adapters.unload(name)

        @app.put("/admin/adapters/default")
        async def set_default_adapter(self, body: AdapterDefault, _: AdminDep
                                      ) -> dict[str, Any]:
            """Make an adapter (or none) the small tier's default, atomically."""
            return self.adapters.set_default(body.name)

        @app.get("/v1/models")
        async def models(self, _: CallerDep) -> dict[str, Any]:
            names = ["auto", *TIERS, *(f"small:{a}" for a in sorted(self.adapters.loaded))]
            data = [{"id": name, "object": "model", "created": self.created,
                     "owned_by": "onlycs"} for name in names]
            return {"object": "list", "data": data}

        @app.post("/v1/chat/completions")
        async def chat_completions(self, req: ChatRequest, request: Request,
                                   caller: CallerDep) -> Any:
            full, turn = await self.prepare_chat(req, request.headers, caller)
            return await self.forward("chat", full, caller, turn)

        @app.post("/v1/completions")
        async def completions(self, req: CompletionRequest,
                              caller: CallerDep) -> Any:
            return await self.forward("completions", req, caller)

    return RouterDeployment
