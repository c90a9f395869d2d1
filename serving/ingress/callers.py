"""Who is calling: FastAPI dependencies that authenticate before the body is validated, so
a caller without a valid key learns nothing about the API from 400s."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from kernel.errors import APIError
from serving.access import Caller
from serving.ingress.errors import error_response
from serving.pipeline.chain import RequestPipeline


def ingress_of(request: Request) -> Any:
    """The ingress object this replica serves (created, collectors, pipeline). Ray Serve
    runs a frozen copy of the FastAPI app, so the replica's own object is found through
    Ray's replica context once, then kept on the app that serves."""
    found = getattr(request.app.state, "ingress", None)
    if found is None:
        from ray import serve

        found = serve.get_replica_context().servable_object
        request.app.state.ingress = found
    return found


def pipeline_of(request: Request) -> RequestPipeline:
    return ingress_of(request).pipeline


def authenticated(request: Request) -> Caller:
    return pipeline_of(request).access.caller(request.headers)


# The dependencies are async, though nothing in them waits: FastAPI runs a sync dependency
# in a worker thread, a hop (and at times a new thread) per request that cost more than
# the check itself (a stat and an HMAC; py-spy of the router under kb load, 2026-12-04).
async def caller(request: Request) -> Caller:
    return authenticated(request)


async def admin(request: Request) -> Caller:
    return pipeline_of(request).access.caller(request.headers, admin=True)


CallerDep = Annotated[Caller, Depends(caller)]
AdminDep = Annotated[Caller, Depends(admin)]


def introspection_refused(request: Request) -> APIError | None:
    """Why this caller may not see the API's shape and the tiers' details (None: it may):
    anyone may when auth is off (or `server.public_introspection`), else a valid key."""
    pipeline = pipeline_of(request)
    if not pipeline.access.required or pipeline.config.server.public_introspection:
        return None
    try:
        authenticated(request)
    except APIError as err:
        return err
    return None


DOC_PATHS = ("/docs", "/openapi.json")


class DocsFollowAuth:
    """/docs and /openapi.json need a key when the API does (the API's whole shape).

    Plain ASGI, not Starlette's `BaseHTTPMiddleware`: that one wraps every response of the
    app, so each chunk of every streamed answer crossed a memory stream between two tasks
    for a check that concerns two paths."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(DOC_PATHS):
            refused = introspection_refused(Request(scope, receive))
            if refused is not None:
                await error_response(refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)
