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
        tree = await pipeline_of(request).reload_rules(text)
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
    return await pipeline_of(request).adapters.set_default(body.name)


def _knowledge(request: Request):
    service = pipeline_of(request).knowledge.service
    if service is None:
        raise APIError(409, "the knowledge base is disabled (knowledge.enabled = false)",
                       code="knowledge_disabled")
    return service


def _published(service: Any, version: int) -> dict[str, Any]:
    kb = service.snapshot().kb
    return {"status": "published", "version": version, "entries": len(kb),
            "versions": service.store.versions()}


async def _publish(service: Any, entries: list[Any]) -> dict[str, Any]:
    import asyncio

    return _published(service, await asyncio.to_thread(service.publish, entries))


@router.get("/admin/kb")
async def kb_status(request: Request, _: AdminDep) -> dict[str, Any]:
    """The version in force, the versions kept for rollback, and the entries (admin)."""
    service = _knowledge(request)
    kb = service.snapshot().kb
    return {"version": kb.version, "versions": service.store.versions(),
            "entries": [e.model_dump(exclude_defaults=True) for e in kb.entries]}


@router.post("/admin/kb/publish")
async def kb_publish(request: Request, _: AdminDep, format: str = "jsonl") -> dict[str, Any]:
    """A whole knowledge base (the body: a JSONL, CSV or Markdown file) as a new version.
    A bad file changes nothing (400 naming the line and field)."""
    from knowledge.files import FORMATS, KnowledgeFileError, parse

    if format not in FORMATS:
        raise APIError(400, f"format must be one of {', '.join(FORMATS)}", param="format",
                       code="invalid_value")
    try:
        entries = parse(await request.body(), format, "request body")
    except KnowledgeFileError as exc:
        raise APIError(400, str(exc), param=exc.field, code="invalid_knowledge_base") from None
    return await _publish(_knowledge(request), entries)


@router.put("/admin/kb/entries/{entry_id}")
async def kb_put_entry(entry_id: str, request: Request, _: AdminDep) -> dict[str, Any]:
    """Add or replace one entry; publishes a new version."""
    from knowledge.files import KnowledgeFileError, parse

    service = _knowledge(request)
    raw = await request.body()
    try:
        (entry,) = parse(raw.replace(b"\n", b" "), "jsonl", "request body")
    except KnowledgeFileError as exc:
        raise APIError(400, str(exc), param=exc.field, code="invalid_entry") from None
    if entry.id != entry_id:
        raise APIError(400, f"the body's id {entry.id!r} is not {entry_id!r}", param="id",
                       code="invalid_entry")
    entries = [e for e in service.snapshot().kb.entries if e.id != entry_id] + [entry]
    return await _publish(service, entries)


@router.delete("/admin/kb/entries/{entry_id}")
async def kb_delete_entry(entry_id: str, request: Request, _: AdminDep) -> dict[str, Any]:
    service = _knowledge(request)
    entries = [e for e in service.snapshot().kb.entries if e.id != entry_id]
    if len(entries) == len(service.snapshot().kb.entries):
        raise APIError(404, f"no entry {entry_id!r}", code="entry_not_found")
    if not entries:
        raise APIError(400, "the last entry cannot be deleted", code="invalid_entry")
    return await _publish(service, entries)


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, description="A published version to put back in force.")


@router.post("/admin/kb/rollback")
async def kb_rollback(body: Rollback, request: Request, _: AdminDep) -> dict[str, Any]:
    import asyncio

    service = _knowledge(request)
    if body.version not in service.store.versions():
        raise APIError(404, f"no version {body.version}", param="version",
                       code="version_not_found")
    await asyncio.to_thread(service.rollback, body.version)
    return _published(service, body.version)
