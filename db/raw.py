"""Statements on the hot path, run on the psycopg connection under a session's transaction.

A step's reads and writes go through here rather than through the ORM or compiled SQLAlchemy constructs: each of
those costs a greenlet hop and result processing per statement, about a third of a worker's CPU in the profiles
(bench/results/profile.md). The session still owns the transaction: what runs here commits or rolls back with it.
"""

from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.abc import QueryNoTemplate as Query
from psycopg.rows import dict_row
from sqlalchemy.ext.asyncio import AsyncSession

_DRIVER = "agentrunner.driver"  # session.info key: (the transaction, its psycopg connection)


async def _driver(session: AsyncSession) -> AsyncConnection[Any]:
    """The psycopg connection of the session's current transaction (beginning one if needed)."""
    if session.new or session.dirty or session.deleted:
        await session.flush()  # what the ORM does before a query of its own: the statement sees staged rows
    tx = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER)
    if tx is not None and cached is not None and cached[0] is tx:
        return cached[1]
    raw = await (await session.connection()).get_raw_connection()
    conn: AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    session.info[_DRIVER] = (session.sync_session.get_transaction(), conn)
    return conn


async def execute(session: AsyncSession, sql: Query, params: Any = None) -> AsyncCursor[tuple[Any, ...]]:
    """Run one statement in the session's transaction; the cursor holds its rows as tuples."""
    return await (await _driver(session)).execute(sql, params)


async def execute_dicts(session: AsyncSession, sql: Query, params: Any = None) -> AsyncCursor[dict[str, Any]]:
    """Run one statement in the session's transaction; the cursor holds its rows as dicts by column name."""
    cursor = (await _driver(session)).cursor(row_factory=dict_row)
    return await cursor.execute(sql, params)
