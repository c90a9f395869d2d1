"""The OpenAI-compatible routes: each hands its request to the chain and maps the typed
outcome to a response."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from serving.ingress.callers import CallerDep, ingress_of, pipeline_of
from serving.ingress.http_metrics import TIER_STATE
from serving.pipeline.decide import model_names
from serving.pipeline.outcome import Outcome, Reply
from serving.protocol import ChatRequest, CompletionRequest

router = APIRouter()


def to_response(outcome: Outcome, request: Request) -> Any:
    setattr(request.state, TIER_STATE, outcome.route.tier)
    headers = outcome.route.headers()
    if isinstance(outcome, Reply):
        return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)
    return StreamingResponse(outcome.events, media_type="text/event-stream", headers=headers)



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
