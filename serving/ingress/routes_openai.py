"""The OpenAI-compatible routes: each hands its request to the chain and maps the typed
outcome to a response."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from serving.ingress.callers import CallerDep, ingress_of, pipeline_of
from serving.ingress.http_metrics import TIER_STATE
from serving.pipeline.decide import model_names
from serving.pipeline.outcome import Outcome, Reply
from serving.protocol import ChatRequest, CompletionRequest

router = APIRouter()
DONE = b"data: [DONE]\n\n"


class ReadyEventStream(StreamingResponse):
    """SSE of an answer the appliance wrote itself (`StreamReply.ready`): its events are
    sent as they come, without StreamingResponse's task group watching for a disconnect
    (that watch exists to stop an engine generating for nobody; here nothing is generated,
    and the wait for the store before `[DONE]` is short). A client that left is written
    to no more by the server, and the turn is stored whole all the same."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        ended = False
        async for chunk in self.body_iterator:
            body = chunk if isinstance(chunk, bytes) else chunk.encode()
            ended = body == DONE  # the last event: it ends the body (one write fewer)
            await send({"type": "http.response.body", "body": body, "more_body": not ended})
        if not ended:  # an error event instead of [DONE] (the store refused the turn)
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def to_response(outcome: Outcome, request: Request) -> Any:
    setattr(request.state, TIER_STATE, outcome.route.tier)
    headers = outcome.route.headers()
    if isinstance(outcome, Reply):
        return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)
    stream = ReadyEventStream if outcome.ready else StreamingResponse
    return stream(outcome.events, media_type="text/event-stream", headers=headers)



@router.get("/v1/models")
async def models(request: Request, _: CallerDep) -> dict[str, Any]:
    chain = pipeline_of(request)
    lora_tier = chain.config.lora.tier
    names = [*model_names(chain.config.tier_names),
             *(f"{lora_tier}:{a}" for a in sorted(chain.adapters.loaded))]
    created = ingress_of(request).created
    data = [{"id": name, "object": "model", "created": created, "owned_by": "onlycs"}
            for name in names]
    return {"object": "list", "data": data}


@router.post("/v1/chat/completions")
async def chat_completions(req: ChatRequest, request: Request, caller: CallerDep) -> Any:
    return to_response(await pipeline_of(request).chat(req, request.headers, caller), request)


@router.post("/v1/completions")
async def completions(req: CompletionRequest, request: Request, caller: CallerDep) -> Any:
    return to_response(await pipeline_of(request).completion(req, caller), request)
