"""Creates the async engine on DATABASE_URL (the `agentrunner` CLI fills it in with embedded PostgreSQL)."""

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from core.settings import Settings


def database_url(settings: Settings) -> str:
    """The libpq URL to use (DATABASE_URL)."""
    if not settings.database_url:
        raise ValueError("DATABASE_URL is not set: point it at PostgreSQL, or start the process through the "
                         "`agentrunner` command, which starts embedded PostgreSQL when it is unset")
    return settings.database_url


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq-style URL into one SQLAlchemy drives with psycopg 3."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://")


def create_engine(settings: Settings, *, pool_size: int = 10) -> AsyncEngine:
    """An async SQLAlchemy engine on psycopg 3."""
    url = sqlalchemy_url(database_url(settings))
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
    _ping_idle_connections(engine)
    return engine


# A pooled connection back in use within this long is taken to be alive; pool_pre_ping's ping on every checkout
# cost a round trip each, about six per response. One idle longer (across a PostgreSQL restart, say) is pinged
# first, so the first request after an outage still gets a live connection; one that dies while in use fails its
# statement, and its reset on the way back to the pool fails too, which discards it.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling for connections that sat idle in the pool."""
    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # as pool_pre_ping does: drop this and every older pooled connection, connect anew
            raise InvalidatePoolError() from exc


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
