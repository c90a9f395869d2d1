"""Admin routes (admin-scoped key): the running config, the rule tree, LoRA adapters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from kernel.errors import APIError
from serving.ingress.callers import AdminDep, pipeline_of
from serving.router.rules import RulesError, as_dict, dump_tree

router = APIRouter()


class AdapterLoad(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Name requests use: model `<lora tier>:<name>`.")
    path: str = Field(description="Adapter folder, inside the adapters root.")
    default: bool = Field(False, description="Also make it the LoRA tier's default.")


class AdapterDefault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(description="A loaded adapter, or null for the base model.")



@router.get("/admin/config")
async def admin_config(request: Request, _: AdminDep) -> dict[str, Any]:
    """The running configuration (admin scope)."""
    return pipeline_of(request).config.model_dump(mode="json")


@router.get("/admin/router/rules")
async def get_rules(request: Request, _: AdminDep) -> Response:
    """The routing rule file in force (admin scope)."""
    root = pipeline_of(request).decider.engine.rules.root
    return Response(dump_tree(as_dict(root)), media_type="application/yaml")


@router.post("/admin/router/rules")
async def reload_rules(request: Request, _: AdminDep) -> dict[str, Any]:
    """Validate a new rule file and swap it in; a bad one changes nothing (400)."""
    text = (await request.body()).decode("utf-8", errors="replace")
    try:
        tree = pipeline_of(request).decider.engine.reload_rules(text)
    except RulesError as exc:
        raise APIError(400, f"rule file rejected: {exc}", code="invalid_rules") from None
    return {"status": "reloaded", "features": sorted(tree.referenced)}


@router.get("/admin/adapters")
async def list_adapters(request: Request, _: AdminDep) -> dict[str, Any]:
    return pipeline_of(request).adapters.describe()


@router.post("/admin/adapters")
async def load_adapter(body: AdapterLoad, request: Request, _: AdminDep) -> dict[str, Any]:
    """Validate and load an adapter from under the adapters root (admin scope)."""
    return await pipeline_of(request).adapters.load(body.name, body.path, body.default)


@router.delete("/admin/adapters/{name}")
async def unload_adapter(name: str, request: Request, _: AdminDep) -> dict[str, Any]:
    return await pipeline_of(request).adapters.unload(name)


@router.put("/admin/adapters/default")
async def set_default_adapter(body: AdapterDefault, request: Request, _: AdminDep
                              ) -> dict[str, Any]:
    """Make an adapter (or none) the LoRA tier's default, atomically."""
    return pipeline_of(request).adapters.set_default(body.name)
