"""Responses through the real stack: answers, tool loops, client-side tools, background, idempotency."""

import asyncio
import contextlib
import json
from datetime import datetime
from typing import Any

import pytest

from api import service as service_module
from api.service import ResponseService
from tests.conftest import Stack
from tests.helpers import create, eventually, text_of
from tests.scripted_upstream import Reply, ToolBehaviour

WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                "strict": True}


async def test_single_step_answer_usage_and_retrieve(stack: Stack) -> None:
    model = await stack.model(Reply(text="Hello there", usage=(12, 3)))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="hi", metadata={"k": "v"}, temperature=0.3)
    assert body["status"] == "completed"
    assert body["id"].startswith("resp_") and body["object"] == "response"
    assert text_of(body) == "Hello there"
    assert body["usage"]["input_tokens"] == 12 and body["usage"]["output_tokens"] == 3
    assert body["usage"]["total_tokens"] == 15
    assert body["metadata"] == {"k": "v"} and body["temperature"] == 0.3
    assert body["completed_at"] >= body["created_at"]
    again = await stack.call("GET", f"/v1/responses/{body['id']}", key)
    assert again.status_code == 200 and again.json() == body
    # The model saw the user's words.
    assert stack.upstream.scripts[model].requests[0]["messages"] == [{"role": "user", "content": "hi"}]


async def test_parallel_server_tools_then_answer(stack: Stack) -> None:
    t1 = await stack.tool(ToolBehaviour(delay=0.6))
    t2 = await stack.tool(ToolBehaviour(delay=0.6))
    model = await stack.model(Reply(tool_calls=[(t1, {"q": "a"}), (t2, {"q": "b"})]), Reply(text="both done"))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="go",
                        tools=[{"type": "function", "name": t1}, {"type": "function", "name": t2}])
    assert body["status"] == "completed"
    assert [i["type"] for i in body["output"]] == ["mcp_call", "mcp_call", "message"]
    assert text_of(body) == "both done"
    assert body["usage"]["input_tokens"] == 20 and body["usage"]["output_tokens"] == 10

    steps = (await stack.call("GET", f"/v1/responses/{body['id']}/steps", key)).json()["data"]
    assert [s["kind"] for s in steps] == ["model_call", "tool_call", "tool_call", "model_call"]
    assert all(s["state"] == "completed" and s["attempt"] == 1 for s in steps)
    assert {s["tool_name"] for s in steps[1:3]} == {t1, t2}
    a, b = ([datetime.fromisoformat(s[k]) for k in ("started_at", "finished_at")] for s in steps[1:3])
    assert a[0] < b[1] and b[0] < a[1], "tool calls of one turn must overlap in time"

    calls = {i["name"]: i for i in body["output"] if i["type"] == "mcp_call"}
    for name, args in ((t1, {"q": "a"}), (t2, {"q": "b"})):
        hits = stack.upstream.tool_hits[name]
        assert len(hits) == 1
        assert hits[0].idempotency_key == f"{body['id']}/{calls[name]['id']}"
        assert hits[0].arguments == args
        item = calls[name]
        assert item["status"] == "completed" and item["server_label"] == "agentrunner" and item["error"] is None
        assert json.loads(item["arguments"]) == args and json.loads(item["output"])["tool"] == name
    seen = stack.upstream.scripts[model].tool_messages(1)
    assert {m["tool_call_id"] for m in seen} == {c["id"] for c in calls.values()}
    assert all(json.loads(m["content"])["tool"] in (t1, t2) for m in seen)
    # One assistant message carried both calls, as the model produced them.
    assistant = [m for m in stack.upstream.scripts[model].requests[1]["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 1 and len(assistant[0]["tool_calls"]) == 2


async def _client_tool_first_turn(stack: Stack, key: str, model: str) -> dict[str, Any]:
    first = await create(stack, key, model=model, input="weather in Paris?", tools=[WEATHER_TOOL])
    assert first["status"] == "completed"
    assert [i["type"] for i in first["output"]] == ["function_call"]
    call = first["output"][0]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    assert call["call_id"] and call["id"].startswith("fc_")
    return first


def _assert_second_turn_context(stack: Stack, model: str, call_id: str) -> None:
    messages = stack.upstream.scripts[model].requests[1]["messages"]
    assert messages[0] == {"role": "user", "content": "weather in Paris?"}
    assert messages[1]["role"] == "assistant" and messages[1]["tool_calls"][0]["id"] == call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"}


async def test_client_side_tool_with_previous_response_id(stack: Stack) -> None:
    model = await stack.model(Reply(tool_calls=[("get_weather", {"city": "Paris"})]), Reply(text="Sunny in Paris"))
    key = await stack.new_key()
    first = await _client_tool_first_turn(stack, key, model)
    call_id = first["output"][0]["call_id"]
    second = await create(stack, key, model=model, previous_response_id=first["id"], tools=[WEATHER_TOOL],
                          input=[{"type": "function_call_output", "call_id": call_id, "output": "sunny, 21C"}])
    assert second["status"] == "completed" and text_of(second) == "Sunny in Paris"
    assert second["previous_response_id"] == first["id"]
    _assert_second_turn_context(stack, model, call_id)


async def test_client_side_tool_with_full_history(stack: Stack) -> None:
    model = await stack.model(Reply(tool_calls=[("get_weather", {"city": "Paris"})]), Reply(text="Sunny in Paris"))
    key = await stack.new_key()
    first = await _client_tool_first_turn(stack, key, model)
    call = first["output"][0]
    bare_call = {k: call[k] for k in ("type", "call_id", "name", "arguments")}  # without id/status
    second = await create(stack, key, model=model, tools=[WEATHER_TOOL], input=[
        {"role": "user", "content": "weather in Paris?"}, bare_call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny, 21C"}])
    assert text_of(second) == "Sunny in Paris"
    _assert_second_turn_context(stack, model, call["call_id"])


async def test_client_side_tool_with_item_reference(stack: Stack) -> None:
    model = await stack.model(Reply(tool_calls=[("get_weather", {"city": "Paris"})]), Reply(text="Sunny in Paris"))
    key = await stack.new_key()
    first = await _client_tool_first_turn(stack, key, model)
    call = first["output"][0]
    second = await create(stack, key, model=model, tools=[WEATHER_TOOL], input=[
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather in Paris?"}]},
        {"type": "item_reference", "id": call["id"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny, 21C"}])
    assert text_of(second) == "Sunny in Paris"
    _assert_second_turn_context(stack, model, call["call_id"])


async def test_mixed_turn_runs_server_tools_then_returns_client_calls(stack: Stack) -> None:
    server_tool = await stack.tool()
    model = await stack.model(Reply(tool_calls=[(server_tool, {"q": "x"}), ("get_weather", {"city": "Rome"})]),
                              Reply(text="done"))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="both",
                        tools=[{"type": "function", "name": server_tool}, WEATHER_TOOL])
    assert body["status"] == "completed"
    assert [i["type"] for i in body["output"]] == ["mcp_call", "function_call"]
    assert body["output"][0]["status"] == "completed" and body["output"][1]["name"] == "get_weather"
    assert len(stack.upstream.tool_hits[server_tool]) == 1
    assert len(stack.upstream.scripts[model].requests) == 1, "client-side calls end the response"
    # The client answers its call; the model then sees both results after the one assistant turn.
    follow = await create(stack, key, model=model, previous_response_id=body["id"], tools=[WEATHER_TOOL],
                          input=[{"type": "function_call_output", "call_id": body["output"][1]["call_id"],
                                  "output": "rainy"}])
    assert follow["status"] == "completed"
    messages = stack.upstream.scripts[model].requests[1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert len(messages[1]["tool_calls"]) == 2 and messages[3]["content"] == "rainy"


async def test_mcp_entry_offers_registered_tools(stack: Stack) -> None:
    wanted, other = await stack.tool(), await stack.tool()
    model = await stack.model(Reply(tool_calls=[(wanted, {"q": "x"})]), Reply(text="used it"))
    key = await stack.new_key()
    entry = {"type": "mcp", "server_label": "agentrunner", "allowed_tools": [wanted], "require_approval": "never"}
    body = await create(stack, key, model=model, input="go", tools=[entry])
    assert text_of(body) == "used it" and body["output"][0]["type"] == "mcp_call"
    assert body["tools"] == [entry]
    offered = [t["function"]["name"] for t in stack.upstream.scripts[model].requests[0]["tools"]]
    assert offered == [wanted] and other not in offered
    everything = await stack.model(Reply(text="ok"))
    await create(stack, key, model=everything, input="go", tools=[{"type": "mcp", "server_label": "agentrunner"}])
    offered = {t["function"]["name"] for t in stack.upstream.scripts[everything].requests[0]["tools"]}
    assert {wanted, other} <= offered


async def test_background_is_queued_then_completes(stack: Stack) -> None:
    model = await stack.model(Reply(text="later", delay=0.5))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="hi", background=True)
    assert body["status"] in ("queued", "in_progress") and body["background"] is True
    assert body["output"] == []

    async def done() -> dict[str, Any] | None:
        got = (await stack.call("GET", f"/v1/responses/{body['id']}", key)).json()
        return got if got["status"] == "completed" else None

    final = await eventually(done, what="background completion")
    assert text_of(final) == "later"


async def test_idempotency_key_returns_the_same_response(stack: Stack) -> None:
    model = await stack.model(Reply(text="once", delay=0.3))
    key = await stack.new_key()
    payload = {"model": model, "input": "hi"}
    headers = {"Idempotency-Key": "order-42"}
    first, second = await asyncio.gather(
        stack.call("POST", "/v1/responses", key, payload, headers=dict(headers)),
        stack.call("POST", "/v1/responses", key, payload, headers=dict(headers)))
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    third = await stack.call("POST", "/v1/responses", key, payload, headers=dict(headers))
    assert third.json() == first.json()
    assert len(stack.upstream.scripts[model].requests) == 1
    other = await stack.call("POST", "/v1/responses", key, {**payload, "input": "bye"}, headers=dict(headers))
    assert other.status_code == 409 and other.json()["error"]["type"] == "conflict_error"
    # Another owner using the same key gets its own response.
    key2 = await stack.new_key()
    mine = await stack.call("POST", "/v1/responses", key2, payload, headers=dict(headers))
    assert mine.status_code == 200 and mine.json()["id"] != first.json()["id"]


async def test_the_request_that_loses_an_idempotency_race_waits_for_the_workflow_not_its_absence(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Both requests pass validation before either stores the row, so one loses the insert; the winner then starts
    # the workflow only after the loser's wait is over. The loser must not wait on a workflow nobody started.
    validated, a_wait_ended = asyncio.Event(), asyncio.Event()
    real_prepare, real_start, real_wait = service_module.prepare, ResponseService._start, ResponseService.wait
    prepared = 0

    async def prepare_together(*args: Any) -> Any:
        nonlocal prepared
        result = await real_prepare(*args)
        prepared += 1
        if prepared == 2:
            validated.set()
        await asyncio.wait_for(validated.wait(), timeout=10)
        return result

    async def winner_starts_late(self: ResponseService, *args: Any, delete_on_failure: bool) -> None:
        if delete_on_failure:  # the request whose insert won
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(a_wait_ended.wait(), timeout=10)
        await real_start(self, *args, delete_on_failure=delete_on_failure)

    async def wait_then_signal(self: ResponseService, *args: Any) -> Any:
        try:
            return await real_wait(self, *args)
        finally:
            a_wait_ended.set()

    monkeypatch.setattr(service_module, "prepare", prepare_together)
    monkeypatch.setattr(ResponseService, "_start", winner_starts_late)
    monkeypatch.setattr(ResponseService, "wait", wait_then_signal)
    model = await stack.model(Reply(text="once"))
    key = await stack.new_key()
    payload, headers = {"model": model, "input": "hi"}, {"Idempotency-Key": "race-1"}
    first, second = await asyncio.gather(*(stack.call("POST", "/v1/responses", key, payload, headers=dict(headers))
                                           for _ in range(2)))
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert first.json()["id"] == second.json()["id"] and len(stack.upstream.scripts[model].requests) == 1


async def test_delete_removes_response_items_and_steps(stack: Stack) -> None:
    model = await stack.model(Reply(text="bye"))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="hi")
    r = await stack.call("DELETE", f"/v1/responses/{body['id']}", key)
    assert r.json() == {"id": body["id"], "object": "response.deleted", "deleted": True}
    assert (await stack.call("GET", f"/v1/responses/{body['id']}", key)).status_code == 404
    assert (await stack.call("DELETE", f"/v1/responses/{body['id']}", key)).status_code == 404
    async with stack.sessions() as s:
        from sqlalchemy import text

        left = await s.execute(text("SELECT (SELECT count(*) FROM items WHERE response_id = :id) + "
                                    "(SELECT count(*) FROM steps WHERE response_id = :id)"), {"id": body["id"]})
        assert left.scalar_one() == 0


async def test_input_items_pagination(stack: Stack) -> None:
    model = await stack.model(Reply(text="ok"))
    key = await stack.new_key()
    inputs = [{"role": "user", "content": f"m{i}"} for i in range(5)]
    body = await create(stack, key, model=model, input=inputs)
    path = f"/v1/responses/{body['id']}/input_items"
    page1 = (await stack.call("GET", path, key, params={"limit": 2, "order": "asc"})).json()
    assert [i["content"][0]["text"] for i in page1["data"]] == ["m0", "m1"] and page1["has_more"]
    page2 = (await stack.call("GET", path, key, params={"limit": 2, "order": "asc", "after": page1["last_id"]})).json()
    page3 = (await stack.call("GET", path, key, params={"limit": 2, "order": "asc", "after": page2["last_id"]})).json()
    assert [i["content"][0]["text"] for i in page2["data"] + page3["data"]] == ["m2", "m3", "m4"]
    assert not page3["has_more"]
    desc = (await stack.call("GET", path, key)).json()
    assert [i["content"][0]["text"] for i in desc["data"]] == ["m4", "m3", "m2", "m1", "m0"]
    assert all(i["id"].startswith("msg_") for i in desc["data"])
    before = (await stack.call("GET", path, key, params={"order": "asc", "before": page2["first_id"]})).json()
    assert [i["content"][0]["text"] for i in before["data"]] == ["m0", "m1"]
    bad = await stack.call("GET", path, key, params={"limit": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"


async def test_max_tool_calls_ends_incomplete(stack: Stack) -> None:
    tool = await stack.tool()
    model = await stack.model(Reply(tool_calls=[(tool, {"q": "again"})]))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="loop", max_tool_calls=2,
                        tools=[{"type": "function", "name": tool}])
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_messages"}
    assert len(stack.upstream.tool_hits[tool]) == 2


async def test_max_model_calls_ends_incomplete(make_stack: Any) -> None:
    async with make_stack(steps={"max_model_calls": 3}) as stack:
        tool = await stack.tool()
        model = await stack.model(Reply(tool_calls=[(tool, {"q": "again"})]))
        key = await stack.new_key()
        body = await create(stack, key, model=model, input="loop", tools=[{"type": "function", "name": tool}])
        assert body["status"] == "incomplete"
        assert len(stack.upstream.scripts[model].requests) == 3


async def test_max_output_tokens_length_is_incomplete(stack: Stack) -> None:
    model = await stack.model(Reply(text="truncat", finish_reason="length"))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="long story", max_output_tokens=5)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert stack.upstream.scripts[model].requests[0]["max_tokens"] == 5


async def test_builtin_scripted_model_runs_a_tool_loop_offline(stack: Stack) -> None:
    tool = await stack.tool(parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    key = await stack.new_key()
    body = await create(stack, key, model="agentrunner-scripted", input="Oslo",
                        tools=[{"type": "function", "name": tool}])
    assert [i["type"] for i in body["output"]] == ["mcp_call", "message"]
    assert stack.upstream.tool_hits[tool][0].arguments == {"city": "Oslo"}
    assert "Oslo" in text_of(body)
    plain = await create(stack, key, model="agentrunner-scripted", input="hello")
    assert "agentrunner-scripted" in text_of(plain) and "hello" in text_of(plain)
    models = (await stack.call("GET", "/v1/models", key)).json()
    assert "agentrunner-scripted" in [m["id"] for m in models["data"]]
