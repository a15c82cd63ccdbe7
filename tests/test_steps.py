"""Steps: each model call, tool call, listing and compaction with its state, timings, usage and details."""

import json

import pytest

from tests.conftest import Stack
from tests.helpers import create, eventually
from tests.scripted_upstream import Reply, ToolBehaviour

pytestmark = pytest.mark.timeout(120)


async def test_steps_with_usage_and_details(stack: Stack) -> None:
    tool = await stack.tool(ToolBehaviour(body='{"temp": 21}'))
    model = await stack.model(Reply(tool_calls=[(tool, {"q": "Oslo"})], usage=(11, 3)),
                              Reply(text="21 degrees", usage=(20, 4)))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="weather?", tools=[{"type": "function", "name": tool}])
    path = f"/v1/responses/{body['id']}/steps"
    plain = (await stack.call("GET", path, key)).json()["data"]
    assert [(st["id"], st["kind"], st["state"]) for st in plain] == [
        ("step_1", "model_call", "completed"), ("step_2", "tool_call", "completed"),
        ("step_3", "model_call", "completed")]
    assert all(st["details"] is None and st["duration_ms"] >= 0 for st in plain)
    assert plain[0]["usage"]["input_tokens"] == 11 and plain[2]["usage"]["output_tokens"] == 4
    assert plain[1]["usage"] is None and plain[1]["tool_name"] == tool
    detailed = (await stack.call("GET", path + "?include=step_details", key)).json()["data"]
    first, call, last = (st["details"] for st in detailed)
    assert [i["type"] for i in first["request"]["input"]] == ["message"] and first["request"]["tools"] == [tool]
    assert [i["type"] for i in first["result"]] == ["mcp_call"]
    assert json.loads(call["arguments"]) == {"q": "Oslo"} and call["output"] == '{"temp": 21}' and call["error"] is None
    assert [i["type"] for i in last["request"]["input"]] == ["message", "mcp_call"]
    assert last["result"][0]["content"][0]["text"] == "21 degrees"
    one = (await stack.call("GET", f"{path}/step_2?include=step_details", key)).json()
    assert one == detailed[1]
    missing = await stack.call("GET", f"{path}/step_9", key)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "step_not_found"


async def test_a_cancelled_step_shows_cancelled(stack: Stack) -> None:
    model = await stack.model(Reply(text="too late", delay=10))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="slow", background=True)
    path = f"/v1/responses/{body['id']}/steps"

    async def running() -> bool:
        steps = (await stack.call("GET", path, key)).json()["data"]
        return bool(steps) and steps[0]["state"] == "running"

    await eventually(running, timeout=30, what="the model call running")
    cancelled = await stack.call("POST", f"/v1/responses/{body['id']}/cancel", key)
    assert cancelled.json()["status"] == "cancelled"

    async def settled() -> bool:
        steps = (await stack.call("GET", path, key)).json()["data"]
        return steps[0]["state"] == "cancelled" and steps[0]["finished_at"] is not None

    await eventually(settled, timeout=30, what="the step marked cancelled")
