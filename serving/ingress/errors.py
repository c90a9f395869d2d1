"""The FastAPI app with every error, the framework's own included, in OpenAI's shape."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kernel.errors import APIError
from serving.ingress.http_metrics import RequestMetricsMiddleware

logger = logging.getLogger(__name__)
VERSION = "0.1.0"


def error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"] if p != "body"]
    param = ".".join(loc) or None
    if first["type"] == "json_invalid":
        param, message = None, "request body is not valid JSON"
    else:
        message = f"{param}: {first['msg']}" if param else first["msg"]
    return error_response(APIError(400, message, param=param, code="invalid_value"))


def _api_error(_: Request, exc: APIError) -> JSONResponse:
    return error_response(exc)


def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    # FastAPI's own 404/405 answers, in OpenAI's shape like every other error.
    return error_response(APIError(exc.status_code, str(exc.detail),
                                   headers=dict(exc.headers or {})))


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.headers.get("x-request-id", "-")
    logger.exception("request %s failed", request_id, exc_info=exc)
    return error_response(APIError(500, "internal error; see the appliance log",
                                   code="internal_error"))


def build_fastapi(docs_enabled: bool) -> FastAPI:
    app = FastAPI(
        title="OnlyCS appliance",
        version=VERSION,
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
