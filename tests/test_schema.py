"""The Alembic revisions, the SQLModel tables and the schema the old SQL runner built are one and the same."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import SQLModel

import db.tables  # noqa: F401  (registers the tables)
from db.engine import sqlalchemy_url
from db.migrate import migrate, pending_revisions

pytestmark = pytest.mark.stack

# Every revision, oldest first.
HEAD = ["0001_initial", "0002_compactions", "0003_compaction_steps", "0004_model_context_window",
        "0005_cache_write_tokens", "0006_model_cache_control", "0007_model_api", "0008_conversations",
        "0009_mcp_servers", "0010_grants_and_cancelled_steps"]

# db/migrations/0001_initial.sql and 0002_response_events.sql as the old runner applied them, verbatim: the
# databases it built are what the baseline revision must reproduce and what migrate() must adopt.
OLD_RUNNER_SQL = {
    "0001_initial.sql": """
CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    owner_id    text NOT NULL,
    name        text NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    prefix      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE models (
    alias           text PRIMARY KEY,
    base_url        text NOT NULL,
    upstream_model  text NOT NULL,
    api_key         text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tools (
    name                 text PRIMARY KEY,
    description          text NOT NULL DEFAULT '',
    parameters           jsonb NOT NULL,
    url                  text NOT NULL,
    timeout_seconds      double precision NOT NULL,
    secret_header_name   text,
    secret_header_value  text,
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE responses (
    id                    text PRIMARY KEY,
    owner_id              text NOT NULL,
    status                text NOT NULL CHECK (status IN ('queued','in_progress','completed','failed','cancelled','incomplete')),
    model                 text NOT NULL,
    request               jsonb NOT NULL,
    previous_response_id  text,
    idempotency_key       text,
    request_hash          text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz,
    error                 jsonb,
    incomplete_reason     text,
    input_tokens          integer NOT NULL DEFAULT 0,
    output_tokens         integer NOT NULL DEFAULT 0,
    cached_tokens         integer NOT NULL DEFAULT 0,
    reasoning_tokens      integer NOT NULL DEFAULT 0
);
CREATE INDEX responses_open_idx ON responses (updated_at) WHERE status IN ('queued', 'in_progress');

-- Item ids are not unique: clients re-send earlier items (with their ids) as new input.
CREATE TABLE items (
    response_id  text NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    direction    text NOT NULL CHECK (direction IN ('input', 'output')),
    position     bigint NOT NULL,
    id           text NOT NULL,
    owner_id     text NOT NULL,
    data         jsonb NOT NULL,
    PRIMARY KEY (response_id, direction, position)
);
CREATE INDEX items_id_idx ON items (id, owner_id);

CREATE TABLE steps (
    response_id  text NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('model_call', 'tool_call')),
    state        text NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
    attempt      integer NOT NULL,
    tool_name    text,
    call_id      text,
    started_at   timestamptz,
    finished_at  timestamptz,
    error        text,
    result       jsonb,
    PRIMARY KEY (response_id, seq)
);
""",  # noqa: E501  (verbatim)
    "0002_response_events.sql": """
-- Durable stream event log: one row per SSE event, numbered per response from 0.
ALTER TABLE responses ADD COLUMN event_seq integer NOT NULL DEFAULT 0;

CREATE TABLE response_events (
    response_id  text NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    step_seq     integer,
    type         text NOT NULL,
    event        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (response_id, seq)
);
CREATE INDEX response_events_step_idx ON response_events (response_id, step_seq);
""",
}

# Everything compare_metadata does not look at (CHECK constraints, column order, constraint names) included.
_CATALOG = {
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
}
_BOOKKEEPING = {"alembic_version", "schema_migrations"}

EngineFactory = Callable[[], Awaitable[AsyncEngine]]


@pytest_asyncio.fixture
async def new_database(pg_url: str) -> AsyncIterator[EngineFactory]:
    """Makes empty databases on the test server, each with an engine; drops them afterwards."""
    made: list[tuple[str, AsyncEngine]] = []

    async def make() -> AsyncEngine:
        name = f"schema_{uuid.uuid4().hex[:12]}"
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            await conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        engine = create_async_engine(sqlalchemy_url(url), pool_size=2)
        made.append((name, engine))
        return engine

    yield make
    for name, engine in made:
        await engine.dispose()
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def build_with_old_runner(engine: AsyncEngine, files: list[str]) -> None:
    """What db/migrate.py did before Alembic: each file once, recorded in schema_migrations."""
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE schema_migrations (name text PRIMARY KEY, "
                                "applied_at timestamptz NOT NULL DEFAULT now())"))
        for name in files:
            await conn.exec_driver_sql(OLD_RUNNER_SQL[name])
            await conn.execute(text("INSERT INTO schema_migrations (name) VALUES (:n)"), {"n": name})


async def catalog(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """The schema as PostgreSQL stores it, bookkeeping tables left out."""
    async with engine.connect() as conn:
        return {what: [tuple(r) for r in await conn.execute(text(sql)) if r[0] not in _BOOKKEEPING]
                for what, sql in _CATALOG.items()}


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).scalars())


def _drift(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_migrated_schema_matches_the_models(new_database: EngineFactory) -> None:
    engine = await new_database()
    await migrate(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_drift) == []


async def test_models_create_exactly_the_migrated_schema(new_database: EngineFactory) -> None:
    migrated, from_models = await new_database(), await new_database()
    await migrate(migrated)
    async with from_models.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    assert await catalog(from_models) == await catalog(migrated)


async def test_baseline_is_the_schema_the_old_runner_built(new_database: EngineFactory) -> None:
    # The old database is stamped at the baseline, then upgraded: it only ends up equal to a fresh migration if
    # the baseline created exactly what the old runner did.
    migrated, old = await new_database(), await new_database()
    await migrate(migrated)
    await build_with_old_runner(old, list(OLD_RUNNER_SQL))
    assert await migrate(old) == HEAD[1:]
    snapshot = await catalog(migrated)
    assert snapshot["columns"] and snapshot["constraints"] and snapshot["indexes"]
    assert await catalog(old) == snapshot


async def test_migrate_applies_each_revision_once(new_database: EngineFactory) -> None:
    engine = await new_database()
    assert await pending_revisions(engine) == HEAD
    assert await migrate(engine) == HEAD
    assert await pending_revisions(engine) == []
    assert await migrate(engine) == []


async def test_concurrent_migrations_apply_each_revision_once(new_database: EngineFactory) -> None:
    # Separate engines, as separate processes (API, workers, CLI) would have.
    engines = [await new_database()]
    url = engines[0].url
    engines += [create_async_engine(url, pool_size=1) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(e) for e in engines))
    finally:
        for e in engines[1:]:
            await e.dispose()
    assert sorted(applied) == [[], [], [], HEAD]


async def test_old_runner_database_is_adopted_with_its_rows(new_database: EngineFactory) -> None:
    engine = await new_database()
    await build_with_old_runner(engine, list(OLD_RUNNER_SQL))
    async with engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO responses (id, owner_id, status, model, request, request_hash, event_seq) "
            "VALUES ('resp_old', 'owner', 'completed', 'm', '{}', 'h', 1)"))
        await conn.execute(text(
            "INSERT INTO items (response_id, direction, position, id, owner_id, data) "
            "VALUES ('resp_old', 'output', 0, 'msg_old', 'owner', '{\"type\": \"message\"}')"))
        await conn.execute(text(
            "INSERT INTO response_events (response_id, seq, type, event) "
            "VALUES ('resp_old', 0, 'response.completed', '{}')"))
    assert await pending_revisions(engine) == HEAD  # not adopted yet, so not ready

    assert await migrate(engine) == HEAD[1:]  # the baseline is stamped, not run: its tables are there already
    assert await pending_revisions(engine) == []
    assert await migrate(engine) == []
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all() == HEAD[-1:]
        assert (await conn.execute(text("SELECT id, status, event_seq FROM responses"))).all() == [
            ("resp_old", "completed", 1)]
        assert (await conn.execute(text("SELECT id, data FROM items"))).all() == [("msg_old", {"type": "message"})]
        assert (await conn.execute(text("SELECT count(*) FROM response_events"))).scalar_one() == 1
    assert "schema_migrations" not in await tables(engine)  # alembic_version is now the one record
    async with engine.connect() as conn:
        assert await conn.run_sync(_drift) == []


async def test_old_runner_database_halfway_is_not_stamped(new_database: EngineFactory) -> None:
    engine = await new_database()
    await build_with_old_runner(engine, ["0001_initial.sql"])  # lacks response_events, which the baseline has
    with pytest.raises(RuntimeError, match="schema_migrations lists"):
        await migrate(engine)
    assert "alembic_version" not in await tables(engine)
    assert "schema_migrations" in await tables(engine)
