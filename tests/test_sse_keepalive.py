"""A stream that waits on a long step stays alive: keep-alive comments flow while no event does."""

import time

from tests.conftest import StackFactory
from tests.scripted_upstream import Reply, ToolBehaviour


async def test_stream_waiting_on_a_slow_tool_gets_keepalive_comments(make_stack: StackFactory) -> None:
    async with make_stack(sse_keepalive_seconds=0.2) as stack:
        tool = await stack.tool(ToolBehaviour(delay=1.5))
        model = await stack.model(Reply(tool_calls=[(tool, {"q": "x"})]), Reply(text="done"))
        key = await stack.new_key()
        pings, last_event_at, gaps = 0, None, []
        async with stack.http.stream("POST", stack.url + "/v1/responses", headers={"Authorization": f"Bearer {key}"},
                                     json={"model": model, "input": "hi", "tools": [{"type": "function", "name": tool}],
                                           "stream": True}) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith(":"):
                    pings += 1
                elif line.startswith("event:"):
                    now = time.monotonic()
                    if last_event_at is not None:
                        gaps.append((now - last_event_at, pings))
                    last_event_at, pings = now, 0
                    if line.endswith("response.completed"):
                        break
        # The tool step is the one long silence between events; it was filled with comments.
        longest, comments = max(gaps)
        assert longest >= 1.0 and comments >= 3
