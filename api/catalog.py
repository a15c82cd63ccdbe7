"""Admin operations on API keys, model aliases and server-side tools: one place for the /admin routes and the CLI.

Inputs are validated here (typed models); `db.catalog` only stores and reads.
"""

from typing import Any, Self

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, NotFound
from core.model_target import UpstreamApi
from core.stream_events import SERVER_LABEL
from db import catalog
from db.tables import GrantKind, McpServer, Tool, UpstreamModel


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    return value


class NewApiKey(BaseModel):
    """POST /admin/api-keys."""

    owner_id: str = Field(min_length=1)
    name: str = "default"


class NewModel(BaseModel):
    """POST /admin/models: route a model alias to an OpenAI-compatible upstream."""

    alias: str = Field(min_length=1)
    base_url: str
    upstream_model: str | None = None
    api_key: str | None = None
    context_window: int | None = Field(None, ge=1, description="tokens; enables the truncation checks")
    cache_control: bool = Field(False, description="the upstream takes cache_control breakpoints on content parts")
    api: UpstreamApi = Field("chat", description="what the upstream speaks: `chat` (/chat/completions) or "
                                                 "`responses` (its own /responses; items pass through unchanged)")

    _url = field_validator("base_url")(_http_url)


class NewTool(BaseModel):
    """POST /admin/tools: a server-side HTTP tool."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    url: str
    description: str = ""
    parameters: dict[str, Any] | None = None
    timeout_seconds: float = Field(30.0, gt=0)
    secret_header_name: str | None = None
    secret_header_value: str | None = None

    _url = field_validator("url")(_http_url)

    @model_validator(mode="after")
    def _secret_pair(self) -> Self:
        if (self.secret_header_name is None) != (self.secret_header_value is None):
            raise ValueError("secret_header_name and secret_header_value go together")
        return self


class NewMcpServer(BaseModel):
    """POST /admin/mcp-servers: a remote MCP server (streamable HTTP) that requests name by its label."""

    label: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    url: str
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every request to it (secrets)")
    description: str = ""

    _url = field_validator("url")(_http_url)

    @field_validator("label")
    @classmethod
    def _not_ours(cls, v: str) -> str:
        if v == SERVER_LABEL:
            raise ValueError(f"{SERVER_LABEL!r} is the label of the server's own registered tools")
        return v


class NewGrant(BaseModel):
    """POST /admin/grants: let an owner use a model alias, a registered tool or a registered MCP server. Anything
    granted to somebody is only its grantees'; anything granted to nobody stays everyone's."""

    kind: GrantKind
    name: str = Field(min_length=1)
    owner_id: str = Field(min_length=1)


def mcp_server_json(row: McpServer) -> dict[str, Any]:
    """A registered MCP server as the admin API shows it (header values omitted)."""
    return {"label": row.label, "url": row.url, "header_names": sorted(row.headers), "description": row.description}


def model_json(row: UpstreamModel) -> dict[str, Any]:
    """A registered alias as the admin API shows it (the key omitted)."""
    return {"alias": row.alias, "base_url": row.base_url, "upstream_model": row.upstream_model,
            "context_window": row.context_window, "cache_control": row.cache_control, "api": row.api}


def tool_json(row: Tool) -> dict[str, Any]:
    """A registered tool as the admin API shows it (the secret value omitted)."""
    return {"name": row.name, "url": row.url, "description": row.description, "parameters": row.parameters,
            "timeout_seconds": row.timeout_seconds, "secret_header_name": row.secret_header_name}


async def create_key(s: AsyncSession, new: NewApiKey) -> dict[str, Any]:
    """Create an API key; the secret is in this answer only."""
    created = await catalog.create_api_key(s, new.owner_id, new.name)
    if created is None:
        raise Conflict("That API key already exists.")
    row, secret = created
    return {"id": row.id, "owner_id": row.owner_id, "name": row.name, "key": secret, "prefix": row.prefix}


async def list_keys(s: AsyncSession) -> list[dict[str, Any]]:
    """Keys without their secrets."""
    return [{"id": r.id, "owner_id": r.owner_id, "name": r.name, "prefix": r.prefix,
             "revoked": r.revoked_at is not None} for r in await catalog.list_api_keys(s)]


async def revoke_key(s: AsyncSession, key_id: str) -> dict[str, Any]:
    """Revoke a key."""
    if not await catalog.revoke_api_key(s, key_id):
        raise NotFound(f"No active key {key_id!r}.", param="id")
    return {"id": key_id, "revoked": True}


async def add_model(s: AsyncSession, new: NewModel) -> dict[str, Any]:
    """Register (or replace) a model alias."""
    return model_json(await catalog.add_model(s, **new.model_dump()))


async def list_models(s: AsyncSession) -> list[dict[str, Any]]:
    """Registered aliases (secrets omitted)."""
    return [model_json(r) for r in await catalog.list_models(s)]


async def remove_model(s: AsyncSession, alias: str) -> dict[str, Any]:
    """Unregister an alias."""
    if not await catalog.remove_model(s, alias):
        raise NotFound(f"No model {alias!r}.", param="alias")
    return {"alias": alias, "deleted": True}


async def add_tool(s: AsyncSession, new: NewTool) -> dict[str, Any]:
    """Register (or replace) a server-side HTTP tool."""
    return tool_json(await catalog.add_tool(s, **new.model_dump()))


async def list_tools(s: AsyncSession) -> list[dict[str, Any]]:
    """Registered tools (secret values omitted)."""
    return [tool_json(r) for r in await catalog.list_tools(s)]


async def remove_tool(s: AsyncSession, name: str) -> dict[str, Any]:
    """Unregister a tool."""
    if not await catalog.remove_tool(s, name):
        raise NotFound(f"No tool {name!r}.", param="name")
    return {"name": name, "deleted": True}


async def add_mcp_server(s: AsyncSession, new: NewMcpServer) -> dict[str, Any]:
    """Register (or replace) a remote MCP server; requests are checked against the fetch policy when they use it."""
    return mcp_server_json(await catalog.add_mcp_server(s, **new.model_dump()))


async def list_mcp_servers(s: AsyncSession) -> list[dict[str, Any]]:
    """Registered MCP servers (header values omitted)."""
    return [mcp_server_json(r) for r in await catalog.list_mcp_servers(s)]


async def remove_mcp_server(s: AsyncSession, label: str) -> dict[str, Any]:
    """Unregister an MCP server."""
    if not await catalog.remove_mcp_server(s, label):
        raise NotFound(f"No MCP server {label!r}.", param="label")
    return {"label": label, "deleted": True}


async def grant(s: AsyncSession, new: NewGrant) -> dict[str, Any]:
    """Grant a model, tool or MCP server to an owner."""
    await catalog.grant(s, new.kind, new.name, new.owner_id)
    return new.model_dump()


async def list_grants(s: AsyncSession) -> list[dict[str, Any]]:
    """Every grant."""
    return [{"kind": g.kind, "name": g.name, "owner_id": g.owner_id} for g in await catalog.list_grants(s)]


async def revoke_grant(s: AsyncSession, gone: NewGrant) -> dict[str, Any]:
    """Take a grant back."""
    if not await catalog.revoke_grant(s, gone.kind, gone.name, gone.owner_id):
        raise NotFound(f"No grant of {gone.kind} {gone.name!r} to {gone.owner_id!r}.", param="name")
    return {**gone.model_dump(), "deleted": True}
