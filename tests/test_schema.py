"""The SQL migrations and the SQLModel tables describe the same schema."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import db.tables  # noqa: F401  (registers the tables)
from db.migrate import migrate


async def test_migrated_columns_match_the_models(db_engine: AsyncEngine) -> None:
    async with db_engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"))
        actual: dict[str, set[str]] = {}
        for table, column in rows:
            actual.setdefault(table, set()).add(column)
    for name, table in SQLModel.metadata.tables.items():
        assert actual.get(name) == {c.name for c in table.columns}, name


async def test_migrate_is_idempotent(db_engine: AsyncEngine) -> None:
    assert await migrate(db_engine) == []
