"""Who is calling: FastAPI dependencies that authenticate before the body is validated, so
a caller without a valid key learns nothing about the API from 400s."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.access import Caller


def caller(request: Request) -> Caller:
    return request.app.state.pipeline.access.caller(request.headers)


def admin(request: Request) -> Caller:
    return request.app.state.pipeline.access.caller(request.headers, admin=True)


CallerDep = Annotated[Caller, Depends(caller)]
AdminDep = Annotated[Caller, Depends(admin)]
