"""While LISTEN/NOTIFY works an idle stream costs no queries; the listener reconnects by itself when cut."""

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from tests.conftest import Stack
from tests.helpers import eventually
from tests.scripted_upstream import Reply, ToolBehaviour

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def event_log_reads() -> Iterator[list[float]]:
    """When each read of a response's event log ran, in any engine of this process (the API's included)."""
    reads: list[float] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "response_events" in statement:
            reads.append(time.monotonic())

    event.listen(Engine, "before_cursor_execute", seen)
    yield reads
    event.remove(Engine, "before_cursor_execute", seen)


async def _stream_with_a_slow_tool(stack: Stack, seconds: float) -> tuple[float, float]:
    """Stream a response whose tool takes `seconds`; the start and end of the longest silence between events."""
    tool = await stack.tool(ToolBehaviour(delay=seconds))
    model = await stack.model(Reply(tool_calls=[(tool, {"q": "x"})]), Reply(text="done"))
    times: list[float] = []
    async with stack.http.stream("POST", stack.url + "/v1/responses", json={
            "model": model, "input": "hi", "tools": [{"type": "function", "name": tool}], "stream": True},
            headers={"Authorization": f"Bearer {await stack.new_key()}"}) as r:
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                times.append(time.monotonic())
            if line.endswith("response.completed"):
                break
    return max(itertools.pairwise(times), key=lambda gap: gap[1] - gap[0])


async def _idle_reads(stack: Stack, reads: list[float]) -> int:
    """How many event-log reads ran while a stream sat in a 3 s tool step (its quiet middle)."""
    start, end = await _stream_with_a_slow_tool(stack, 3.0)
    assert end - start >= 2.5
    return sum(start + 0.25 < t < end - 0.25 for t in reads)


async def test_an_idle_stream_costs_no_queries(stack: Stack, event_log_reads: list[float]) -> None:
    # Polling (the fallback) would read the log about once a second here.
    assert await _idle_reads(stack, event_log_reads) == 0


async def test_the_listener_reconnects_by_itself(stack: Stack, event_log_reads: list[float]) -> None:
    listeners = "SELECT pid FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'"
    async with stack.sessions() as s:
        cut = set((await s.execute(text(listeners))).scalars())
        assert cut  # the API's and the worker's
        await s.execute(text(f"SELECT pg_terminate_backend(pid) FROM ({listeners}) l"))

    async def back() -> bool:
        async with stack.sessions() as s:
            now = set((await s.execute(text(listeners))).scalars())
        return len(now) == len(cut) and not now & cut

    await eventually(back, timeout=15)
    # Streams work and are woken by notifications again, not by polling.
    assert await _idle_reads(stack, event_log_reads) == 0


async def test_live_deltas_are_sent_from_their_notifications_not_read_back(stack: Stack,
                                                                             event_log_reads: list[float]) -> None:
    # Each delta's NOTIFY carries it (committed first): the relay sends it without reading the log again.
    words = [f"w{i} " for i in range(20)]
    model = await stack.model(Reply(text="".join(words), token_delay=0.02))
    deltas = []
    async with stack.http.stream("POST", stack.url + "/v1/responses", json={"model": model, "input": "hi",
                                                                            "stream": True},
                                 headers={"Authorization": f"Bearer {await stack.new_key()}"}) as r:
        async for line in r.aiter_lines():
            if line.startswith("data:") and '"response.output_text.delta"' in line:
                deltas.append(line)
    assert len(deltas) >= 10  # the upstream's pace: most tokens are a write of their own
    assert len(event_log_reads) <= 3, event_log_reads  # catching up at the start, and maybe at the end
