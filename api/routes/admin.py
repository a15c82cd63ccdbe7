"""/admin: API keys, upstream models and server-side tools (admin token required)."""

from typing import Any

from fastapi import APIRouter

from api import catalog
from api.catalog import NewApiKey, NewGrant, NewMcpServer, NewModel, NewTool
from api.deps import Admin, CatalogWrite, Db
from db.tables import GrantKind

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Admin, CatalogWrite])


def _page(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data}


@router.post("/api-keys")
async def create_key(body: NewApiKey, s: Db) -> dict[str, Any]:
    """Create an API key; the secret is shown only here."""
    return await catalog.create_key(s, body)


@router.get("/api-keys")
async def list_keys(s: Db) -> dict[str, Any]:
    """Keys without their secrets."""
    return _page(await catalog.list_keys(s))


@router.delete("/api-keys/{key_id}")
async def revoke_key(key_id: str, s: Db) -> dict[str, Any]:
    """Revoke a key."""
    return await catalog.revoke_key(s, key_id)


@router.post("/models")
async def add_model(body: NewModel, s: Db) -> dict[str, Any]:
    """Route a model alias to an OpenAI-compatible upstream."""
    return await catalog.add_model(s, body)


@router.get("/models")
async def list_models(s: Db) -> dict[str, Any]:
    """Registered aliases (secrets omitted)."""
    return _page(await catalog.list_models(s))


@router.delete("/models/{alias}")
async def remove_model(alias: str, s: Db) -> dict[str, Any]:
    """Unregister an alias."""
    return await catalog.remove_model(s, alias)


@router.post("/tools")
async def add_tool(body: NewTool, s: Db) -> dict[str, Any]:
    """Register a server-side HTTP tool."""
    return await catalog.add_tool(s, body)


@router.get("/tools")
async def list_tools(s: Db) -> dict[str, Any]:
    """Registered tools (secret values omitted)."""
    return _page(await catalog.list_tools(s))


@router.delete("/tools/{name}")
async def remove_tool(name: str, s: Db) -> dict[str, Any]:
    """Unregister a tool."""
    return await catalog.remove_tool(s, name)


@router.post("/mcp-servers")
async def add_mcp_server(body: NewMcpServer, s: Db) -> dict[str, Any]:
    """Register a remote MCP server under a label (its headers are never shown again)."""
    return await catalog.add_mcp_server(s, body)


@router.get("/mcp-servers")
async def list_mcp_servers(s: Db) -> dict[str, Any]:
    """Registered MCP servers (header values omitted)."""
    return _page(await catalog.list_mcp_servers(s))


@router.delete("/mcp-servers/{label}")
async def remove_mcp_server(label: str, s: Db) -> dict[str, Any]:
    """Unregister an MCP server."""
    return await catalog.remove_mcp_server(s, label)


@router.post("/grants")
async def grant(body: NewGrant, s: Db) -> dict[str, Any]:
    """Let an owner use a model, tool or MCP server (which from then on only its grantees may use)."""
    return await catalog.grant(s, body)


@router.get("/grants")
async def list_grants(s: Db) -> dict[str, Any]:
    """Every grant."""
    return _page(await catalog.list_grants(s))


@router.delete("/grants/{kind}/{name}/{owner_id}")
async def revoke_grant(kind: GrantKind, name: str, owner_id: str, s: Db) -> dict[str, Any]:
    """Take a grant back (the last one gone, the thing is everyone's again)."""
    return await catalog.revoke_grant(s, NewGrant(kind=kind, name=name, owner_id=owner_id))
