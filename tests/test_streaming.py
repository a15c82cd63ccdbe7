"""Streaming through the durable event log: lifecycle, live deltas, replay, resume, retries."""

import asyncio
import json
import time
from typing import Any

import pytest

from activities.lifecycle import move_status
from activities.notifier import EventNotifier
from api import stream as api_stream
from core.status import OPEN_STATUSES, ResponseStatus
from db.events import events_after
from tests.conftest import Stack
from tests.helpers import eventually
from tests.scripted_upstream import Reply, ToolBehaviour
from tests.streaming_helpers import assert_well_formed, replay, sse_events, stream_create, streamed_text

LONG = "The quick brown fox jumps over the lazy dog while the cat watches from the warm windowsill today"


async def test_text_stream_lifecycle_and_replay(stack: Stack) -> None:
    model = await stack.model(Reply(text=LONG, usage=(9, 20)))
    key = await stack.new_key()
    events = await stream_create(stack, key, model=model, input="tell me")
    assert_well_formed(events)
    types = [e["type"] for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert streamed_text(events) == LONG
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["usage"]["output_tokens"] == 20
    assert final["output"][0]["content"][0]["text"] == LONG
    assert events[2]["item"]["id"] == final["output"][0]["id"]
    again = await replay(stack, key, final["id"])
    assert again == events
    retrieved = (await stack.call("GET", f"/v1/responses/{final['id']}", key)).json()
    assert retrieved == final


async def test_openai_sdk_raw_stream_and_helper(stack: Stack) -> None:
    model = await stack.model(Reply(text=LONG))
    client = stack.openai(await stack.new_key())
    raw = await client.responses.create(model=model, input="hi", stream=True)
    events = [e async for e in raw]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"

    deltas = []
    async with client.responses.stream(model=model, input="hi") as stream:
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = await stream.get_final_response()
    assert "".join(deltas) == LONG == final.output_text
    retrieved = await client.responses.retrieve(final.id)
    assert retrieved.model_dump() == without_parsed(final.model_dump())

    # The SDK's own resume: retrieve(stream=True, starting_after=N) continues exactly after N.
    resumed = await client.responses.retrieve(events[-1].response.id, stream=True, starting_after=3)  # type: ignore[union-attr]
    tail = [e async for e in resumed]
    assert [e.sequence_number for e in tail] == list(range(4, len(events)))
    assert [e.type for e in tail] == [e.type for e in events[4:]]


async def test_multi_step_stream_with_server_tool(stack: Stack) -> None:
    tool = await stack.tool(ToolBehaviour(body='{"temp": 21}'))
    model = await stack.model(Reply(tool_calls=[(tool, {"q": "Oslo"})]), Reply(text="It is 21 degrees."))
    key = await stack.new_key()
    events = await stream_create(stack, key, model=model, input="weather?", tools=[{"type": "function", "name": tool}])
    assert_well_formed(events)
    items = [(e["type"], e["output_index"], e["item"]["type"], e["item"]["status"]) for e in events
             if e["type"] in ("response.output_item.added", "response.output_item.done")]
    assert items == [
        ("response.output_item.added", 0, "mcp_call", "in_progress"),
        ("response.output_item.done", 0, "mcp_call", "completed"),
        ("response.output_item.added", 1, "message", "in_progress"),
        ("response.output_item.done", 1, "message", "completed")]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["name"] == tool and added["item"]["arguments"] == ""
    arguments = next(e for e in events if e["type"] == "response.mcp_call_arguments.done")
    assert arguments["item_id"] == added["item"]["id"] and arguments["arguments"] == '{"q": "Oslo"}'
    assert [e["type"] for e in events if e["type"].startswith("response.mcp_call.")] == [
        "response.mcp_call.in_progress", "response.mcp_call.completed"]
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["item"]["output"] == '{"temp": 21}' and done["item"]["id"] == added["item"]["id"]
    # The tool ran between the call being shown and its result: the second model call starts after it.
    assert events.index(done) < next(i for i, e in enumerate(events) if e["type"] == "response.output_text.delta")
    assert streamed_text(events) == "It is 21 degrees."
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["mcp_call", "message"]

    client = stack.openai(key)
    async with client.responses.stream(model=model, input="again", tools=[
            {"type": "function", "name": tool, "parameters": {"type": "object", "properties": {}}}]) as s:
        sdk_final = await s.get_final_response()
    assert sdk_final.output_text == "It is 21 degrees."


async def test_deltas_arrive_while_the_upstream_is_still_generating(stack: Stack) -> None:
    model = await stack.model(Reply(text=" ".join(f"w{i}" for i in range(20)), token_delay=0.05))
    key = await stack.new_key()
    first_delta_at = None
    async with stack.http.stream("POST", stack.url + "/v1/responses", headers={"Authorization": f"Bearer {key}"},
                                 json={"model": model, "input": "go", "stream": True}) as r:
        async for event in sse_events(r):
            if event["type"] == "response.output_text.delta" and first_delta_at is None:
                first_delta_at = time.monotonic()
    times = stack.upstream.scripts[model].token_times
    assert first_delta_at is not None and len(times) == 20
    assert first_delta_at < times[-1] - 0.5, "the first delta must reach the client long before the last token"


async def test_disconnect_and_resume_without_gap_or_duplicate(stack: Stack) -> None:
    model = await stack.model(Reply(text=LONG, token_delay=0.03))
    key = await stack.new_key()
    seen: list[dict[str, Any]] = []
    async with stack.http.stream("POST", stack.url + "/v1/responses", headers={"Authorization": f"Bearer {key}"},
                                 json={"model": model, "input": "go", "stream": True, "background": True}) as r:
        async for event in sse_events(r):
            seen.append(event)
            if len(seen) == 6:
                break  # the client goes away mid-stream
    rid = seen[0]["response"]["id"]
    rest = await replay(stack, key, rid, after=seen[-1]["sequence_number"])
    assert_well_formed(seen + rest)
    assert streamed_text(seen + rest) == LONG
    assert await replay(stack, key, rid) == seen + rest


async def test_upstream_drop_mid_stream_is_retried_without_duplicate_text(stack: Stack) -> None:
    model = await stack.model(Reply(text=LONG, drop_after=5), Reply(text=LONG))
    key = await stack.new_key()
    events = await stream_create(stack, key, model=model, input="go")
    assert_well_formed(events)
    assert len(stack.upstream.scripts[model].requests) == 2
    assert streamed_text(events) == LONG
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["message"]
    assert final["output"][0]["content"][0]["text"] == LONG
    messages = {e["item"]["id"] for e in events if e["type"] == "response.output_item.added"}
    assert len(messages) == 1


async def test_retry_that_disagrees_closes_the_partial_item(stack: Stack) -> None:
    model = await stack.model(Reply(text="Hello wonderful world", drop_after=2), Reply(text="Goodbye now"))
    client = stack.openai(await stack.new_key())
    async with client.responses.stream(model=model, input="go") as s:
        events = [e async for e in s]
        final = await s.get_final_response()
    partial, answer = final.output
    assert partial.type == "message" and partial.status == "incomplete"
    # The partial item holds exactly what the client was shown before the drop (coalescing decides how much).
    shown = "".join(e.delta for e in events if e.type == "response.output_text.delta" and e.item_id == partial.id)
    assert shown and partial.content[0].text == shown  # type: ignore[union-attr]
    assert "Hello wonderful world".startswith(shown)
    assert answer.type == "message" and answer.status == "completed" and final.output_text.endswith("Goodbye now")
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.output_index for e in added] == [0, 1]
    # The next turn's context leaves the partial answer out.
    follow = await stack.model(Reply(text="ok"))
    await client.responses.create(model=follow, input="next", previous_response_id=final.id)
    history = stack.upstream.scripts[follow].requests[0]["messages"]
    assert [m["content"] for m in history if m["role"] == "assistant"] == ["Goodbye now"]


async def test_cancelled_stream_ends_with_failed_status_cancelled(stack: Stack) -> None:
    model = await stack.model(Reply(text=LONG, token_delay=0.5))
    key = await stack.new_key()
    events: list[dict[str, Any]] = []

    async def read() -> None:
        async with stack.http.stream("POST", stack.url + "/v1/responses", headers={"Authorization": f"Bearer {key}"},
                                     json={"model": model, "input": "go", "stream": True}) as r:
            async for event in sse_events(r):
                events.append(event)

    reader = asyncio.create_task(read())
    await eventually(lambda: _has_delta(events), what="first delta")
    rid = events[0]["response"]["id"]
    assert (await stack.call("POST", f"/v1/responses/{rid}/cancel", key)).json()["status"] == "cancelled"
    await asyncio.wait_for(reader, timeout=20)
    assert events[-1]["type"] == "response.failed" and events[-1]["response"]["status"] == "cancelled"
    assert_well_formed(events)


async def test_stream_replay_needs_a_streamed_response_and_delete_drops_the_log(stack: Stack) -> None:
    model = await stack.model(Reply(text="plain"))
    key = await stack.new_key()
    plain = (await stack.call("POST", "/v1/responses", key, {"model": model, "input": "x"})).json()
    r = await stack.call("GET", f"/v1/responses/{plain['id']}", key, params={"stream": "true"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"
    events = await stream_create(stack, key, model=model, input="x")
    rid = events[0]["response"]["id"]
    await stack.call("DELETE", f"/v1/responses/{rid}", key)
    async with stack.sessions() as s:
        from sqlalchemy import text

        left = await s.execute(text("SELECT count(*) FROM response_events WHERE response_id = :id"), {"id": rid})
        assert left.scalar_one() == 0


@pytest.mark.parametrize("age", [0])
async def test_event_retention_expires_finished_logs(stack: Stack, age: int) -> None:
    from datetime import timedelta

    from db.events import delete_expired_events

    model = await stack.model(Reply(text="short-lived"))
    key = await stack.new_key()
    events = await stream_create(stack, key, model=model, input="x")
    async with stack.sessions() as s:
        assert await delete_expired_events(s, timedelta(seconds=age)) >= len(events)
    assert await replay(stack, key, events[0]["response"]["id"]) == []


def without_parsed(value: Any) -> Any:
    """Drop the `parsed` fields the SDK's stream helper adds client-side."""
    if isinstance(value, dict):
        return {k: without_parsed(v) for k, v in value.items() if k != "parsed"}
    if isinstance(value, list):
        return [without_parsed(v) for v in value]
    return value


async def _has_delta(events: list[dict[str, Any]]) -> bool:
    return any(e["type"] == "response.output_text.delta" for e in events)


async def test_relay_sends_the_terminal_event_that_commits_between_its_two_reads(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # A response in progress whose stream is all caught up: its next read finds no events.
    model = await stack.model(Reply(text="slow", delay=30))
    key = await stack.new_key()
    async with stack.http.stream("POST", stack.url + "/v1/responses", json={"model": model, "input": "hi",
                                 "stream": True}, headers={"Authorization": f"Bearer {key}"}) as r:
        first = await anext(sse_events(r))
    response_id = first["response"]["id"]
    async with stack.sessions() as s:
        caught_up = (await events_after(s, response_id, -1))[-1]["sequence_number"]

    real_events_after = events_after
    raced = False

    async def events_after_then_finish(s: Any, rid: str, after: int) -> list[dict[str, Any]]:
        nonlocal raced
        found = await real_events_after(s, rid, after)
        if not found and not raced:
            raced = True  # the response ends right after this read, before the relay looks at its status
            async with stack.sessions() as other:
                await move_status(other, rid, ResponseStatus.CANCELLED, only_from=OPEN_STATUSES)
        return found

    monkeypatch.setattr(api_stream, "events_after", events_after_then_finish)
    notifier = EventNotifier(str(stack.settings.database_url))
    relay = api_stream.EventRelay(stack.sessions, notifier, keepalive_seconds=15)
    frames = [json.loads(str(f.data)) async for f in relay.events(response_id, caught_up)]
    assert raced and len(frames) == 1
    assert frames[0]["type"] == "response.failed" and frames[0]["response"]["status"] == "cancelled"
    await stack.temporal.get_workflow_handle(response_id).terminate()
