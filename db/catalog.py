"""Lookups and admin writes for API keys, upstream models and registered tools."""

import secrets
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.ids import hash_secret, new_id
from core.model_target import ModelTarget, default_target
from core.settings import Settings
from db.events import CATALOG_CHANNEL, notify
from db.tables import ApiKey, Grant, GrantKind, McpServer, Tool, UpstreamModel


async def _commit_change(session: AsyncSession) -> None:
    """Commit a catalog write, telling every process to forget the lookups it kept (activities.catalog_cache)."""
    await notify(session, CATALOG_CHANNEL, "")
    await session.commit()


async def usable(session: AsyncSession, kind: GrantKind, names: list[str], owner_id: str | None) -> set[str]:
    """Which of these names the owner may use: those granted to nobody (everyone's), and those granted to it.
    Without an owner (a worker acting for a response already checked), all of them."""
    if owner_id is None or not names:
        return set(names)
    rows = await session.execute(select(col(Grant.name), col(Grant.owner_id))
                                 .where(col(Grant.kind) == kind, col(Grant.name).in_(names)))
    restricted, granted = set(), set()
    for name, owner in rows:
        restricted.add(name)
        if owner == owner_id:
            granted.add(name)
    return (set(names) - restricted) | granted


async def resolve_model(session: AsyncSession, settings: Settings, alias: str,
                        owner_id: str | None = None) -> ModelTarget | None:
    """The target of a model alias, or None when nothing serves it (or, given an owner, it may not use it)."""
    if not await usable(session, "model", [alias], owner_id):
        return None
    row = await session.get(UpstreamModel, alias)
    if row is not None:
        return ModelTarget(alias, row.upstream_model, row.base_url, row.api_key, row.context_window, row.cache_control,
                           row.api)  # type: ignore[arg-type]  # the column's CHECK keeps it an UpstreamApi
    return default_target(settings, alias)


async def list_models(session: AsyncSession, owner_id: str | None = None) -> list[UpstreamModel]:
    """Registered models (those the owner may use, given one), by alias."""
    rows = list(await session.scalars(select(UpstreamModel).order_by(col(UpstreamModel.alias))))
    allowed = await usable(session, "model", [r.alias for r in rows], owner_id)
    return [r for r in rows if r.alias in allowed]


async def add_model(session: AsyncSession, *, alias: str, base_url: str, upstream_model: str | None,
                    api_key: str | None, context_window: int | None = None, cache_control: bool = False,
                    api: str = "chat") -> UpstreamModel:
    """Register (or replace) a model alias."""
    values = {"base_url": base_url.rstrip("/"), "upstream_model": upstream_model or alias, "api_key": api_key,
              "context_window": context_window, "cache_control": cache_control, "api": api}
    return await _upsert(session, UpstreamModel, {"alias": alias, **values}, "alias", values)


async def remove_model(session: AsyncSession, alias: str) -> bool:
    """Unregister a model alias; whether it was registered."""
    removed = await session.scalar(delete(UpstreamModel).where(col(UpstreamModel.alias) == alias)
                                   .returning(col(UpstreamModel.alias)))
    await _commit_change(session)
    return removed is not None


async def add_tool(session: AsyncSession, *, name: str, url: str, description: str = "",
                   parameters: dict[str, Any] | None = None, timeout_seconds: float = 30.0,
                   secret_header_name: str | None = None, secret_header_value: str | None = None) -> Tool:
    """Register (or replace) a server-side HTTP tool."""
    values = {"url": url, "description": description, "parameters": parameters or {"type": "object", "properties": {}},
              "timeout_seconds": timeout_seconds, "secret_header_name": secret_header_name,
              "secret_header_value": secret_header_value}
    return await _upsert(session, Tool, {"name": name, **values}, "name", values)


async def add_mcp_server(session: AsyncSession, *, label: str, url: str, headers: dict[str, str],
                         description: str = "") -> McpServer:
    """Register (or replace) a remote MCP server under a label."""
    values = {"url": url, "headers": headers, "description": description}
    return await _upsert(session, McpServer, {"label": label, **values}, "label", values)


async def list_mcp_servers(session: AsyncSession) -> list[McpServer]:
    """Registered MCP servers, by label."""
    return list(await session.scalars(select(McpServer).order_by(col(McpServer.label))))


async def mcp_servers_by_label(session: AsyncSession, labels: list[str],
                               owner_id: str | None = None) -> dict[str, McpServer]:
    """The registered MCP servers among these labels (those the owner may use, given one)."""
    allowed = await usable(session, "mcp_server", labels, owner_id)
    if not allowed:
        return {}
    return {m.label: m for m in await session.scalars(select(McpServer).where(col(McpServer.label).in_(allowed)))}


async def remove_mcp_server(session: AsyncSession, label: str) -> bool:
    """Unregister an MCP server; whether it was registered."""
    removed = await session.scalar(delete(McpServer).where(col(McpServer.label) == label)
                                   .returning(col(McpServer.label)))
    await _commit_change(session)
    return removed is not None


CatalogRow = TypeVar("CatalogRow", UpstreamModel, Tool, McpServer)


async def _upsert(session: AsyncSession, table: type[CatalogRow], row: dict[str, Any], key: str,
                  values: dict[str, Any]) -> CatalogRow:
    """Insert a catalog row or replace its values in place (keeping when it was first created)."""
    stmt = insert(table).values(**row).on_conflict_do_update(index_elements=[key], set_=values)
    stored = await session.scalar(stmt.returning(table).execution_options(populate_existing=True))
    await _commit_change(session)
    assert stored is not None
    return stored


async def list_tools(session: AsyncSession, owner_id: str | None = None) -> list[Tool]:
    """Registered tools (those the owner may use, given one), by name."""
    rows = list(await session.scalars(select(Tool).order_by(col(Tool.name))))
    allowed = await usable(session, "tool", [t.name for t in rows], owner_id)
    return [t for t in rows if t.name in allowed]


async def tools_by_name(session: AsyncSession, names: list[str], owner_id: str | None = None) -> dict[str, Tool]:
    """The registered tools among these names (those the owner may use, given one)."""
    allowed = await usable(session, "tool", names, owner_id)
    if not allowed:
        return {}
    rows = await session.scalars(select(Tool).where(col(Tool.name).in_(allowed)))
    return {t.name: t for t in rows}


async def grant(session: AsyncSession, kind: GrantKind, name: str, owner_id: str) -> None:
    """Let an owner use a model, tool or MCP server (which from then on only its grantees may use)."""
    await session.execute(insert(Grant).values(kind=kind, name=name, owner_id=owner_id).on_conflict_do_nothing())
    await _commit_change(session)


async def revoke_grant(session: AsyncSession, kind: GrantKind, name: str, owner_id: str) -> bool:
    """Take a grant back; whether there was one. (The last one gone, the thing is everyone's again.)"""
    removed = await session.scalar(delete(Grant).where(col(Grant.kind) == kind, col(Grant.name) == name,
                                                      col(Grant.owner_id) == owner_id).returning(col(Grant.name)))
    await _commit_change(session)
    return removed is not None


async def list_grants(session: AsyncSession) -> list[Grant]:
    """Every grant, by kind, name and owner."""
    return list(await session.scalars(select(Grant).order_by(col(Grant.kind), col(Grant.name), col(Grant.owner_id))))


async def remove_tool(session: AsyncSession, name: str) -> bool:
    """Unregister a tool; whether it was registered."""
    removed = await session.scalar(delete(Tool).where(col(Tool.name) == name).returning(col(Tool.name)))
    await _commit_change(session)
    return removed is not None


async def create_api_key(session: AsyncSession, owner_id: str, name: str = "default",
                         secret: str | None = None) -> tuple[ApiKey, str] | None:
    """Create a key for an owner: the row and the secret (shown once, stored hashed); None if it exists."""
    secret = secret or "sk-ar-" + secrets.token_urlsafe(32)
    key_hash = hash_secret(secret)
    if await session.scalar(select(col(ApiKey.id)).where(col(ApiKey.key_hash) == key_hash)):
        return None
    row = ApiKey(id=new_id("key"), owner_id=owner_id, name=name, key_hash=key_hash, prefix=secret[:10])
    session.add(row)
    await _commit_change(session)
    return row, secret


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    """All keys (hashes only)."""
    return list(await session.scalars(select(ApiKey).order_by(col(ApiKey.created_at))))


async def revoke_api_key(session: AsyncSession, key_id: str) -> bool:
    """Revoke a key by id; whether an active key had that id."""
    revoked = await session.scalar(
        update(ApiKey).where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=func.now()).returning(col(ApiKey.id))
    )
    await _commit_change(session)
    return revoked is not None


async def owner_for_key(session: AsyncSession, secret: str) -> str | None:
    """The owner of an active API key, or None."""
    return await session.scalar(
        select(col(ApiKey.owner_id))
        .where(col(ApiKey.key_hash) == hash_secret(secret), col(ApiKey.revoked_at).is_(None))
    )
