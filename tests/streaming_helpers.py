"""Reading the API's SSE streams in tests."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse `event:`/`data:` frames, checking that the event name matches the data's type."""
    name = None
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            event = json.loads(line[5:])
            assert event["type"] == name, (name, event["type"])
            yield event


def streamed_text(events: list[dict[str, Any]]) -> str:
    """What a client that concatenates output_text deltas shows."""
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def assert_well_formed(events: list[dict[str, Any]], *, first_seq: int = 0) -> None:
    """Contiguous sequence numbers, created first, one terminal event last, one response id throughout."""
    assert [e["sequence_number"] for e in events] == list(range(first_seq, first_seq + len(events)))
    if first_seq == 0:
        assert events[0]["type"] == "response.created"
        assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
        assert events[1]["type"] == "response.in_progress"
    terminal = [e for e in events if e["type"] in ("response.completed", "response.failed", "response.incomplete")]
    assert terminal == [events[-1]]
    ids = {e["response"]["id"] for e in events if "response" in e}
    assert len(ids) == 1
