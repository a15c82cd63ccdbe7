"""Statements on the hot path, run on a psycopg connection: under a session's transaction, or on a pooled
connection of their own in autocommit (`autocommit`).

A step's reads and writes go through here rather than through the ORM or compiled SQLAlchemy constructs: each of
those costs a greenlet hop and result processing per statement, about a third of a worker's CPU in the profiles
(bench/results/profile.md). Under a session, the session still owns the transaction: what runs here commits or
rolls back with it.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg.abc import QueryNoTemplate as Query
from psycopg.rows import dict_row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.util import greenlet_spawn

_DRIVER = "agentrunner.driver"  # session.info key: (the transaction, its psycopg connection)

# Where a statement runs: in a session's transaction, or on a connection from `autocommit`.
Db = AsyncSession | AsyncConnection[Any]


async def _driver(db: Db) -> AsyncConnection[Any]:
    """The psycopg connection to run on: the session's current transaction's (beginning one if needed)."""
    if isinstance(db, AsyncConnection):
        return db
    if db.new or db.dirty or db.deleted:
        await db.flush()  # what the ORM does before a query of its own: the statement sees staged rows
    tx = db.sync_session.get_transaction()
    cached = db.info.get(_DRIVER)
    if tx is not None and cached is not None and cached[0] is tx:
        return cached[1]
    raw = await (await db.connection()).get_raw_connection()
    conn: AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    db.info[_DRIVER] = (db.sync_session.get_transaction(), conn)
    return conn


async def execute(db: Db, sql: Query, params: Any = None) -> AsyncCursor[tuple[Any, ...]]:
    """Run one statement; the cursor holds its rows as tuples."""
    return await (await _driver(db)).execute(sql, params)


async def execute_dicts(db: Db, sql: Query, params: Any = None) -> AsyncCursor[dict[str, Any]]:
    """Run one statement; the cursor holds its rows as dicts by column name."""
    cursor = (await _driver(db)).cursor(row_factory=dict_row)
    return await cursor.execute(sql, params)


@contextlib.asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection from the engine's pool on which each statement commits by itself.

    For work that is one statement: a session's transaction around it costs a BEGIN and a COMMIT round trip and
    the session's bookkeeping, about three times the statement's own CPU (370 against 120 µs in isolation). The
    connection goes back to the same pool, with its checks (`db/engine.py`); a broken one is discarded.
    """
    raw = await engine.raw_connection()
    conn: AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    try:
        await conn.set_autocommit(True)
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            await conn.set_autocommit(False)  # sessions expect transactions
        await greenlet_spawn(raw.invalidate if conn.broken or conn.closed or conn.autocommit else raw.close)
