"""Creates the async engine on DATABASE_URL (the `agentrunner` CLI fills it in with embedded PostgreSQL)."""

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

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
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
