"""Alembic migrations (db/migrations/versions), run in code on one connection under a PostgreSQL advisory lock."""

import functools
import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

# The SQL runner Alembic replaced used this constant too, so a process of either release waits for the other.
_LOCK_ID = 0x61676E74
BASELINE = "0001_initial"
# What that runner recorded in schema_migrations for the schema BASELINE creates.
_OLD_RUNNER_FILES = frozenset({"0001_initial.sql", "0002_response_events.sql"})

log = logging.getLogger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code: this package's script directory and the connection to use."""
    cfg = Config()
    cfg.set_main_option("script_location", "db:migrations")
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    # Revision files do not change while a process runs; parsing them once keeps readiness checks cheap.
    return ScriptDirectory.from_config(alembic_config())


def _pending(conn: Connection) -> list[str]:
    """Revisions between the database's and head, oldest first."""
    current = MigrationContext.configure(conn).get_current_heads()
    try:
        newest_first = _scripts().iterate_revisions("heads", current or "base")
        return [s.revision for s in reversed(list(newest_first)) if s.revision not in current]
    except CommandError as exc:
        raise RuntimeError(f"the database is at revision {', '.join(current)}, which this release does not know "
                           f"(migrated by a newer one?): {exc}") from exc


def _adopt_old_runner(conn: Connection, cfg: Config) -> None:
    """Stamp a database the SQL file runner built at BASELINE, which creates that same schema."""
    if conn.execute(text("SELECT to_regclass('schema_migrations')")).scalar() is None:
        return
    if MigrationContext.configure(conn).get_current_heads():
        return  # Alembic already tracks it; the old table is not ours to interpret any more
    done = set(conn.execute(text("SELECT name FROM schema_migrations")).scalars())
    if done != _OLD_RUNNER_FILES:
        # BASELINE is both files; anything else is a schema it does not describe, so stamping would lie.
        raise RuntimeError(f"schema_migrations lists {sorted(done)}, expected {sorted(_OLD_RUNNER_FILES)}: "
                           "finish migrating with the release that wrote it before upgrading")
    command.stamp(cfg, BASELINE)
    # Dropped, in the same transaction as the stamp: alembic_version is then the one record of the schema's
    # version. Were it kept, an older release's runner would take the database as up to date and run on a schema
    # it does not know; without it that runner re-creates api_keys, fails and rolls back, changing nothing.
    conn.execute(text("DROP TABLE schema_migrations"))
    log.warning("adopted a database made by the SQL migration runner: stamped at %s", BASELINE)


def _upgrade(conn: Connection) -> list[str]:
    cfg = alembic_config(conn)
    _adopt_old_runner(conn, cfg)
    pending = _pending(conn)
    if pending:
        command.upgrade(cfg, "heads")
    return pending


async def migrate(engine: AsyncEngine) -> list[str]:
    """Bring the database to head; returns the revisions applied now."""
    # One transaction: the lock is held until the schema and alembic_version commit together, so a process that
    # waited on it finds nothing left to do, and a failed revision leaves the database as it was.
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        return await conn.run_sync(_upgrade)


async def pending_revisions(engine: AsyncEngine) -> list[str]:
    """Revisions not applied yet, oldest first; empty when the database is at head."""
    async with engine.connect() as conn:
        return await conn.run_sync(_pending)
