"""Cancellation, upstream errors and retries, failing tools, and workflows that end abnormally."""

import asyncio
import json
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.notifier import EventNotifier
from api.service import ResponseService
from tests.conftest import Stack, StackFactory
from tests.helpers import create, eventually, text_of
from tests.scripted_upstream import Reply, ToolBehaviour


async def test_cancel_aborts_the_inflight_model_call(stack: Stack) -> None:
    model = await stack.model(Reply(text="too late", delay=60))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="slow", background=True)
    script = stack.upstream.scripts[model]
    await eventually(lambda: _async(len(script.requests) == 1), what="upstream call started")

    started = time.monotonic()
    r = await stack.call("POST", f"/v1/responses/{body['id']}/cancel", key)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert time.monotonic() - started < 5
    await eventually(lambda: _async(script.aborted == 1), timeout=10, what="upstream request aborted")

    again = await stack.call("POST", f"/v1/responses/{body['id']}/cancel", key)
    assert again.status_code == 200 and again.json() == r.json()
    assert (await stack.call("GET", f"/v1/responses/{body['id']}", key)).json()["status"] == "cancelled"
    assert len(script.requests) == 1, "a cancelled call is not retried"


async def test_cancel_finished_response_is_an_error(stack: Stack) -> None:
    model = await stack.model(Reply(text="done"))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="hi")
    r = await stack.call("POST", f"/v1/responses/{body['id']}/cancel", key)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "completed" in r.json()["error"]["message"]


async def test_upstream_429_twice_then_success(stack: Stack) -> None:
    busy = Reply(status=429, headers={"retry-after-ms": "50"},
                 error_body={"error": {"message": "slow down", "type": "rate_limit_error"}})
    model = await stack.model(busy, busy, Reply(text="finally"))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="hi")
    assert body["status"] == "completed" and text_of(body) == "finally"
    assert len(stack.upstream.scripts[model].requests) == 3
    steps = (await stack.call("GET", f"/v1/responses/{body['id']}/steps", key)).json()["data"]
    assert len(steps) == 1 and steps[0]["attempt"] == 3 and steps[0]["state"] == "completed"


async def test_upstream_400_fails_at_once_with_its_message(stack: Stack) -> None:
    model = await stack.model(Reply(status=400, error_body={"error": {
        "message": "Invalid 'messages': too long", "type": "invalid_request_error", "param": "messages",
        "code": "context_length_exceeded"}}))
    key = await stack.new_key()
    r = await stack.call("POST", "/v1/responses", key, {"model": model, "input": "hi"})
    assert r.status_code == 400, r.text
    assert r.json() == {"error": {"message": "Invalid 'messages': too long", "type": "invalid_request_error",
                                  "param": "messages", "code": "context_length_exceeded"}}
    assert len(stack.upstream.scripts[model].requests) == 1, "4xx is not retried"
    listed = await _only_response_of(stack, key)
    assert listed["status"] == "failed"
    assert listed["error"]["message"] == "Invalid 'messages': too long"


async def test_upstream_503_is_retried_until_the_time_budget_runs_out(make_stack: StackFactory) -> None:
    # Backoff 0.1 s doubling to 0.4 s: a 2 s budget fits a handful of attempts, then the upstream's error shows.
    async with make_stack(steps={"model_retry_budget_seconds": 2.0, "retry_max_seconds": 0.4}) as stack:
        model = await stack.model(Reply(status=503, error_body={"error": {"message": "overloaded"}}))
        key = await stack.new_key()
        started = time.monotonic()
        r = await stack.call("POST", "/v1/responses", key, {"model": model, "input": "hi"})
        took = time.monotonic() - started
        assert r.status_code == 503 and r.json()["error"]["message"] == "overloaded"
        attempts = len(stack.upstream.scripts[model].requests)
        assert 3 <= attempts <= 10, attempts
        assert 1.0 <= took < 10, took  # retried for about the budget, then failed for good


async def test_failing_and_slow_tools_give_the_model_an_error_result(stack: Stack) -> None:
    broken = await stack.tool(ToolBehaviour(status=500))
    slow = await stack.tool(ToolBehaviour(delay=30), timeout=0.5)
    model = await stack.model(Reply(tool_calls=[(broken, {"q": "1"}), (slow, {"q": "2"})]), Reply(text="coped"))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="go",
                        tools=[{"type": "function", "name": broken}, {"type": "function", "name": slow}])
    assert body["status"] == "completed" and text_of(body) == "coped"
    results = {m["tool_call_id"]: json.loads(m["content"]) for m in stack.upstream.scripts[model].tool_messages(1)}
    calls = {i["name"]: i for i in body["output"] if i["type"] == "mcp_call"}
    assert "HTTP 500" in results[calls[broken]["id"]]["error"]
    assert "timed out" in results[calls[slow]["id"]]["error"]
    assert calls[broken]["status"] == "failed"
    assert calls[broken]["error"]["type"] == "mcp_tool_execution_error"
    assert "HTTP 500" in calls[broken]["error"]["content"][0]["text"]
    assert calls[slow]["status"] == "failed" and calls[slow]["output"] is None
    steps = (await stack.call("GET", f"/v1/responses/{body['id']}/steps", key)).json()["data"]
    assert all(s["state"] == "completed" for s in steps)
    assert sum(1 for s in steps if s["error"]) == 2
    assert len(stack.upstream.tool_hits[broken]) == 1


async def test_terminated_workflow_is_reconciled_to_failed(make_stack: StackFactory, db_engine: AsyncEngine) -> None:
    async with make_stack(reconcile_min_age_seconds=0) as stack:
        model = await stack.model(Reply(text="never", delay=60))
        key = await stack.new_key()
        body = await create(stack, key, model=model, input="hi", background=True)
        await eventually(lambda: _async(len(stack.upstream.scripts[model].requests) == 1), what="call started")
        await stack.temporal.get_workflow_handle(body["id"]).terminate(reason="operator")
        service = ResponseService(stack.sessions, db_engine, stack.temporal, stack.settings,
                                  EventNotifier(stack.settings.database_url or ""))  # not started: unused here
        assert await service.reconcile_stale() >= 1
        got = (await stack.call("GET", f"/v1/responses/{body['id']}", key)).json()
        assert got["status"] == "failed" and "TERMINATED" in got["error"]["message"]


async def test_a_blocking_request_whose_workflow_is_terminated_is_answered(stack: Stack) -> None:
    # The end never writes the row, so no NOTIFY comes: the request learns of it from the workflow's result,
    # which it awaits once the response has been open for a while (api/service.py, RESULT_POLL_AFTER).
    model = await stack.model(Reply(text="never", delay=60))
    key = await stack.new_key()
    blocking = asyncio.create_task(stack.call("POST", "/v1/responses", key, {"model": model, "input": "hi"}))
    await eventually(lambda: _async(len(stack.upstream.scripts[model].requests) == 1), what="call started")
    response_id = (await _only_response_of(stack, key))["id"]
    await stack.temporal.get_workflow_handle(response_id).terminate(reason="operator")
    answer = await asyncio.wait_for(blocking, 30)
    assert answer.status_code >= 500, answer.text
    assert "TERMINATED" in answer.json()["error"]["message"]
    got = (await stack.call("GET", f"/v1/responses/{response_id}", key)).json()
    assert got["status"] == "failed" and "TERMINATED" in got["error"]["message"]


async def _only_response_of(stack: Stack, key: str) -> dict[str, Any]:
    from sqlalchemy import text

    from db.catalog import owner_for_key

    async with stack.sessions() as s:
        owner = await owner_for_key(s, key)
        ids = (await s.execute(text("SELECT id FROM responses WHERE owner_id = :o"), {"o": owner})).scalars().all()
    assert len(ids) == 1
    return (await stack.call("GET", f"/v1/responses/{ids[0]}", key)).json()  # type: ignore[no-any-return]


async def _async(value: bool) -> bool:
    return value
