"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving import metrics
from serving.ingress.callers import caller, ingress_of, introspection_refused, pipeline_of

router = APIRouter()
metrics_router = APIRouter()


@router.get("/healthz")
@router.get("/health")  # what vLLM, GuideLLM and load balancers probe
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ready, tiers = await pipeline_of(request).readiness()
    # A probe without a key learns up or down, no more.
    if introspection_refused(request) is not None:
        tiers = {name: {"ready": tier["ready"]} for name, tier in tiers.items()}
    body = {"status": "ready" if ready else "not_ready", "tiers": tiers}
    return JSONResponse(body, status_code=200 if ready else 503)


@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    if pipeline_of(request).access.metrics_require_key:
        caller(request)
    return Response(metrics.render(ingress_of(request).collectors),
                    media_type=CONTENT_TYPE_LATEST)
