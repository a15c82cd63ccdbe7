"""Applies db/migrations/NNNN_*.sql in order, once each, under an advisory lock."""

from importlib import resources

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_LOCK_ID = 0x61676E74  # any constant shared by every process that migrates


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration, in order."""
    folder = resources.files("db.migrations")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, folder.joinpath(name).read_text()) for name in names]


async def migrate(engine: AsyncEngine) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now: list[str] = []
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        await conn.execute(
            text("CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, "
                 "applied_at timestamptz NOT NULL DEFAULT now())")
        )
        done = set((await conn.execute(text("SELECT name FROM schema_migrations"))).scalars())
        for name, sql in migration_files():
            if name in done:
                continue
            await conn.exec_driver_sql(sql)
            await conn.execute(text("INSERT INTO schema_migrations (name) VALUES (:n)"), {"n": name})
            applied_now.append(name)
    return applied_now
