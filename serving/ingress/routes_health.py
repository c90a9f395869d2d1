"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving import metrics
from serving.ingress.callers import authenticated, ingress_of, introspection_refused, pipeline_of

router = APIRouter()
metrics_router = APIRouter()


@router.get("/healthz")
@router.get("/health")  # what vLLM, GuideLLM and load balancers probe
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    status, tiers = await pipeline_of(request).readiness()
    # A probe without a key learns up, degraded or down, no more.
    if introspection_refused(request) is not None:
        tiers = {name: {"ready": tier["ready"]} for name, tier in tiers.items()}
    # Degraded still serves: a load balancer keeps sending (200), ops see the status.
    return JSONResponse({"status": status, "tiers": tiers},
                        status_code=503 if status == "not_ready" else 200)


@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    if pipeline_of(request).access.metrics_require_key:
        authenticated(request)
    return Response(metrics.render(ingress_of(request).collectors),
                    media_type=CONTENT_TYPE_LATEST)
