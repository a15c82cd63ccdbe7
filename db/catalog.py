"""Lookups and admin writes for API keys, upstream models and registered tools."""

import secrets
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.errors import Conflict, InvalidRequest, NotFound
from core.ids import hash_secret, new_id
from core.settings import Settings
from db.tables import ApiKey, Tool, UpstreamModel


@dataclass(frozen=True)
class ModelTarget:
    """Where a model alias goes: the built-in scripted model, or an HTTP upstream."""

    alias: str
    upstream_model: str
    base_url: str | None  # None: the built-in scripted model
    api_key: str | None

    @property
    def completions_url(self) -> str:
        """The upstream's chat completions endpoint."""
        return f"{self.base_url}/chat/completions"

    @property
    def headers(self) -> dict[str, str]:
        """Auth headers for the upstream (none without a key)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


async def resolve_model(session: AsyncSession, settings: Settings, alias: str) -> ModelTarget | None:
    """The target of a model alias, or None when nothing serves it."""
    row = await session.get(UpstreamModel, alias)
    if row is not None:
        return ModelTarget(alias, row.upstream_model, row.base_url, row.api_key)
    if alias == settings.scripted_model:
        return ModelTarget(alias, alias, None, None)
    if settings.upstream_base_url:
        return ModelTarget(alias, alias, settings.upstream_base_url, settings.upstream_api_key)
    return None


async def list_models(session: AsyncSession) -> list[UpstreamModel]:
    """Registered models, by alias."""
    return list(await session.scalars(select(UpstreamModel).order_by(col(UpstreamModel.alias))))


async def add_model(session: AsyncSession, alias: str, base_url: str, upstream_model: str | None,
                    api_key: str | None) -> UpstreamModel:
    """Register (or replace) a model alias."""
    if not base_url.startswith(("http://", "https://")):
        raise InvalidRequest("base_url must be an http(s) URL.", param="base_url")
    values = {"base_url": base_url.rstrip("/"), "upstream_model": upstream_model or alias, "api_key": api_key}
    return await _upsert(session, UpstreamModel, {"alias": alias, **values}, "alias", values)


async def remove_model(session: AsyncSession, alias: str) -> None:
    """Unregister a model alias."""
    if await session.scalar(delete(UpstreamModel).where(col(UpstreamModel.alias) == alias)
                            .returning(col(UpstreamModel.alias))) is None:
        raise NotFound(f"No model {alias!r}.", param="alias")
    await session.commit()


async def add_tool(session: AsyncSession, *, name: str, url: str, description: str = "",
                   parameters: dict[str, Any] | None = None, timeout_seconds: float = 30.0,
                   secret_header_name: str | None = None, secret_header_value: str | None = None) -> Tool:
    """Register (or replace) a server-side HTTP tool."""
    if not url.startswith(("http://", "https://")):
        raise InvalidRequest("url must be an http(s) URL.", param="url")
    if timeout_seconds <= 0:
        raise InvalidRequest("timeout_seconds must be positive.", param="timeout_seconds")
    if (secret_header_name is None) != (secret_header_value is None):
        raise InvalidRequest("secret_header_name and secret_header_value go together.", param="secret_header_name")
    values = {"url": url, "description": description, "parameters": parameters or {"type": "object", "properties": {}},
              "timeout_seconds": timeout_seconds, "secret_header_name": secret_header_name,
              "secret_header_value": secret_header_value}
    return await _upsert(session, Tool, {"name": name, **values}, "name", values)


CatalogRow = TypeVar("CatalogRow", UpstreamModel, Tool)


async def _upsert(session: AsyncSession, table: type[CatalogRow], row: dict[str, Any], key: str,
                  values: dict[str, Any]) -> CatalogRow:
    """Insert a catalog row or replace its values in place (keeping when it was first created)."""
    stmt = insert(table).values(**row).on_conflict_do_update(index_elements=[key], set_=values)
    stored = await session.scalar(stmt.returning(table).execution_options(populate_existing=True))
    await session.commit()
    assert stored is not None
    return stored


async def list_tools(session: AsyncSession) -> list[Tool]:
    """Registered tools, by name."""
    return list(await session.scalars(select(Tool).order_by(col(Tool.name))))


async def tools_by_name(session: AsyncSession, names: list[str]) -> dict[str, Tool]:
    """The registered tools among these names."""
    if not names:
        return {}
    rows = await session.scalars(select(Tool).where(col(Tool.name).in_(names)))
    return {t.name: t for t in rows}


async def remove_tool(session: AsyncSession, name: str) -> None:
    """Unregister a tool."""
    if await session.scalar(delete(Tool).where(col(Tool.name) == name).returning(col(Tool.name))) is None:
        raise NotFound(f"No tool {name!r}.", param="name")
    await session.commit()


async def create_api_key(session: AsyncSession, owner_id: str, name: str = "default",
                         secret: str | None = None) -> tuple[ApiKey, str]:
    """Create a key for an owner; returns the row and the secret (shown once, stored hashed)."""
    secret = secret or "sk-ar-" + secrets.token_urlsafe(32)
    key_hash = hash_secret(secret)
    if await session.scalar(select(col(ApiKey.id)).where(col(ApiKey.key_hash) == key_hash)):
        raise Conflict("That API key already exists.")
    row = ApiKey(id=new_id("key"), owner_id=owner_id, name=name, key_hash=key_hash, prefix=secret[:10])
    session.add(row)
    await session.commit()
    return row, secret


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    """All keys (hashes only)."""
    return list(await session.scalars(select(ApiKey).order_by(col(ApiKey.created_at))))


async def revoke_api_key(session: AsyncSession, key_id: str) -> None:
    """Revoke a key by id."""
    revoked = await session.scalar(
        update(ApiKey).where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=func.now()).returning(col(ApiKey.id))
    )
    if revoked is None:
        raise NotFound(f"No active key {key_id!r}.", param="id")
    await session.commit()


async def owner_for_key(session: AsyncSession, secret: str) -> str | None:
    """The owner of an active API key, or None."""
    return await session.scalar(
        select(col(ApiKey.owner_id))
        .where(col(ApiKey.key_hash) == hash_secret(secret), col(ApiKey.revoked_at).is_(None))
    )
