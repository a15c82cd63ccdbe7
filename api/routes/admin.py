"""/admin: API keys, upstream models and server-side tools (admin token required)."""

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import Admin, Sessions
from db import catalog

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Admin])


class NewApiKey(BaseModel):
    owner_id: str = Field(min_length=1)
    name: str = "default"


class NewModel(BaseModel):
    alias: str = Field(min_length=1)
    base_url: str
    upstream_model: str | None = None
    api_key: str | None = None


class NewTool(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    url: str
    description: str = ""
    parameters: dict[str, Any] | None = None
    timeout_seconds: float = 30.0
    secret_header_name: str | None = None
    secret_header_value: str | None = None


@router.post("/api-keys")
async def create_key(body: NewApiKey, sessions: Sessions) -> dict[str, Any]:
    """Create an API key; the secret is shown only here."""
    async with sessions() as s:
        row, secret = await catalog.create_api_key(s, body.owner_id, body.name)
    return {"id": row.id, "owner_id": row.owner_id, "name": row.name, "key": secret, "prefix": row.prefix}


@router.get("/api-keys")
async def list_keys(sessions: Sessions) -> dict[str, Any]:
    """Keys without their secrets."""
    async with sessions() as s:
        rows = await catalog.list_api_keys(s)
    return {"object": "list", "data": [
        {"id": r.id, "owner_id": r.owner_id, "name": r.name, "prefix": r.prefix,
         "revoked": r.revoked_at is not None} for r in rows]}


@router.delete("/api-keys/{key_id}")
async def revoke_key(key_id: str, sessions: Sessions) -> dict[str, Any]:
    """Revoke a key."""
    async with sessions() as s:
        await catalog.revoke_api_key(s, key_id)
    return {"id": key_id, "revoked": True}


@router.post("/models")
async def add_model(body: NewModel, sessions: Sessions) -> dict[str, Any]:
    """Route a model alias to an OpenAI-compatible upstream."""
    async with sessions() as s:
        row = await catalog.add_model(s, body.alias, body.base_url, body.upstream_model, body.api_key)
    return {"alias": row.alias, "base_url": row.base_url, "upstream_model": row.upstream_model}


@router.get("/models")
async def list_models(sessions: Sessions) -> dict[str, Any]:
    """Registered aliases (secrets omitted)."""
    async with sessions() as s:
        rows = await catalog.list_models(s)
    return {"object": "list", "data": [
        {"alias": r.alias, "base_url": r.base_url, "upstream_model": r.upstream_model} for r in rows]}


@router.delete("/models/{alias}")
async def remove_model(alias: str, sessions: Sessions) -> dict[str, Any]:
    """Unregister an alias."""
    async with sessions() as s:
        await catalog.remove_model(s, alias)
    return {"alias": alias, "deleted": True}


@router.post("/tools")
async def add_tool(body: NewTool, sessions: Sessions) -> dict[str, Any]:
    """Register a server-side HTTP tool."""
    async with sessions() as s:
        row = await catalog.add_tool(s, **body.model_dump())
    return _tool_json(row)


@router.get("/tools")
async def list_tools(sessions: Sessions) -> dict[str, Any]:
    """Registered tools (secret values omitted)."""
    async with sessions() as s:
        rows = await catalog.list_tools(s)
    return {"object": "list", "data": [_tool_json(r) for r in rows]}


@router.delete("/tools/{name}")
async def remove_tool(name: str, sessions: Sessions) -> dict[str, Any]:
    """Unregister a tool."""
    async with sessions() as s:
        await catalog.remove_tool(s, name)
    return {"name": name, "deleted": True}


def _tool_json(row: Any) -> dict[str, Any]:
    return {"name": row.name, "url": row.url, "description": row.description, "parameters": row.parameters,
            "timeout_seconds": row.timeout_seconds, "secret_header_name": row.secret_header_name}
