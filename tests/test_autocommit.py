"""One-statement work on a pooled connection in autocommit (`db.raw.autocommit`): it commits by itself, and the
connection goes back to the sessions' pool as it was, or not at all when it broke."""

import secrets
from collections.abc import AsyncIterator

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from db.engine import create_engine, session_factory
from db.raw import autocommit, execute

pytestmark = pytest.mark.timeout(60)


@pytest_asyncio.fixture
async def one_connection(base_settings: Settings, db_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """An engine whose pool keeps one connection, so what one user of it leaves behind the next one gets."""
    engine = create_engine(base_settings, pool_size=1)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def table(db_engine: AsyncEngine) -> AsyncIterator[str]:
    """A scratch table of its own."""
    name = f"autocommit_{secrets.token_hex(4)}"
    async with autocommit(db_engine) as conn:
        await conn.execute(f"CREATE TABLE {name} (n int)")
    yield name
    async with autocommit(db_engine) as conn:
        await conn.execute(f"DROP TABLE {name}")


async def _count(engine: AsyncEngine, table: str) -> int:
    async with session_factory(engine)() as s:
        row = await (await execute(s, f"SELECT count(*) FROM {table}")).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_statement_commits_by_itself(one_connection: AsyncEngine, db_engine: AsyncEngine,
                                             table: str) -> None:
    async with autocommit(one_connection) as conn:
        await conn.execute(f"INSERT INTO {table} VALUES (1)")
        assert await _count(db_engine, table) == 1  # another connection sees it before this one is given back


async def test_the_connection_goes_back_to_sessions_with_transactions(one_connection: AsyncEngine,
                                                                      table: str) -> None:
    async with autocommit(one_connection) as conn:
        await conn.execute("SELECT 1")
    async with session_factory(one_connection)() as s:  # the same pooled connection
        await execute(s, f"INSERT INTO {table} VALUES (1)")
        await s.rollback()
    assert await _count(one_connection, table) == 0


async def test_a_connection_that_broke_is_not_given_out_again(one_connection: AsyncEngine) -> None:
    with pytest.raises(psycopg.OperationalError):
        async with autocommit(one_connection) as conn:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    # Within a second of its last use a pooled connection is not pinged (db/engine.py): a dead one handed out
    # again would fail this statement.
    async with autocommit(one_connection) as conn:
        assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
