"""Reading the API's SSE streams in tests."""

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from tests.wire import assert_wire

if TYPE_CHECKING:
    from tests.conftest import Stack


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse `event:`/`data:` frames, checking that the event name matches the data's type."""
    name = None
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            event = json.loads(line[5:])
            assert event["type"] == name, (name, event["type"])
            assert_wire(event, "event")
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


async def stream_create(stack: "Stack", key: str, **fields: Any) -> list[dict[str, Any]]:
    """POST with stream=true and read the whole SSE stream."""
    async with stack.http.stream("POST", stack.url + "/v1/responses", json={**fields, "stream": True},
                                 headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        return [e async for e in sse_events(r)]


async def replay(stack: "Stack", key: str, response_id: str, after: int | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"stream": "true"}
    if after is not None:
        params["starting_after"] = after
    async with stack.http.stream("GET", f"{stack.url}/v1/responses/{response_id}", params=params,
                                 headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status_code == 200
        return [e async for e in sse_events(r)]
