"""Streams that wait stay alive: keep-alive comments flow while no event does, on every kind of stream."""

import json
import time
from dataclasses import dataclass, field

import pytest

from tests.conftest import Stack, StackFactory
from tests.scripted_upstream import Reply, ToolBehaviour


@dataclass
class Heard:
    """An SSE stream read to its end."""

    data: list[str] = field(default_factory=list)
    gaps: list[tuple[float, int]] = field(default_factory=list)  # (seconds, comments) between two data frames

    def longest_gap(self) -> tuple[float, int]:
        """The longest silence between data frames and the comments that filled it."""
        return max(self.gaps)


async def _listen(stack: Stack, path: str, body: dict[str, object], key: str) -> Heard:
    heard, pings, last_at = Heard(), 0, None
    async with stack.http.stream("POST", stack.url + path, headers={"Authorization": f"Bearer {key}"},
                                 json=body, timeout=120) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith(":"):
                pings += 1
            elif line.startswith("data:"):
                now = time.monotonic()
                if last_at is not None:
                    heard.gaps.append((now - last_at, pings))
                last_at, pings = now, 0
                heard.data.append(line.removeprefix("data:").strip())
    return heard


async def test_stream_waiting_on_a_slow_tool_gets_keepalive_comments(make_stack: StackFactory) -> None:
    async with make_stack(sse_keepalive_seconds=0.2) as stack:
        tool = await stack.tool(ToolBehaviour(delay=1.5))
        model = await stack.model(Reply(tool_calls=[(tool, {"q": "x"})]), Reply(text="done"))
        heard = await _listen(stack, "/v1/responses", {
            "model": model, "input": "hi", "tools": [{"type": "function", "name": tool}], "stream": True},
            await stack.new_key())
    # The tool step is the one long silence between events; it was filled with comments.
    longest, comments = heard.longest_gap()
    assert longest >= 1.0 and comments >= 3


@pytest.mark.timeout(120)
async def test_stream_held_open_across_a_20_second_tool_step_at_the_default_interval(stack: Stack) -> None:
    assert stack.settings.sse_keepalive_seconds == 15  # the default a user gets
    tool = await stack.tool(ToolBehaviour(delay=20), timeout=60)
    model = await stack.model(Reply(tool_calls=[(tool, {"q": "x"})]), Reply(text="all done"))
    heard = await _listen(stack, "/v1/responses", {
        "model": model, "input": "hi", "tools": [{"type": "function", "name": tool}], "stream": True},
        await stack.new_key())
    longest, comments = heard.longest_gap()
    assert longest >= 19 and comments >= 1
    last = json.loads(heard.data[-1])
    assert last["type"] == "response.completed" and last["response"]["output"][-1]["content"][0]["text"] == "all done"


async def test_chat_passthrough_stream_gets_keepalives_between_slow_chunks(make_stack: StackFactory) -> None:
    async with make_stack(sse_keepalive_seconds=0.2) as stack:
        model = await stack.model(Reply(text="slow words", token_delay=1.0))
        heard = await _listen(stack, "/v1/chat/completions", {
            "model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}, await stack.new_key())
    # Comments fill the upstream's silences, and only between its events: every data frame is whole.
    longest, comments = heard.longest_gap()
    assert longest >= 0.9 and comments >= 3
    assert heard.data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in heard.data[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "slow words"
