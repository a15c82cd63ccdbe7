"""Remote MCP servers: tools listed once per response, calls as durable tool steps, behind the fetch allow-list."""

import json
from typing import Any

import pytest
from agents import Agent, HostedMCPTool, OpenAIResponsesModel, Runner, set_tracing_disabled
from sqlalchemy import text

from core.fetch_policy import FetchPolicy
from tests.conftest import ADMIN_TOKEN, Stack, StackFactory
from tests.helpers import create, text_of
from tests.mcp_server import ScriptedMcp
from tests.scripted_upstream import Reply
from tests.streaming_helpers import assert_well_formed, stream_create

pytestmark = pytest.mark.timeout(120)
set_tracing_disabled(True)  # the Agents SDK would otherwise export traces to the internet


def calc(mcp: ScriptedMcp, **extra: Any) -> dict[str, Any]:
    """An mcp tool entry for the test server."""
    return {"type": "mcp", "server_label": "calc", "server_url": mcp.url, "require_approval": "never", **extra}


async def test_list_then_call_through_the_openai_sdk(stack: Stack, mcp: ScriptedMcp) -> None:
    model = await stack.model(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply(text="2 + 3 = 5"),
                              Reply(tool_calls=[("add", {"a": 5, "b": 1})]), Reply(text="then 6"))
    client = stack.openai(await stack.new_key())
    before = len(mcp.hits)
    tool = calc(mcp, headers={"X-Api-Key": "secret-1"}, allowed_tools=["add", "weather"])
    r = await client.responses.create(model=model, input="2+3?", tools=[tool])  # type: ignore[list-item]
    assert r.status == "completed" and r.output_text == "2 + 3 = 5"
    assert [i.type for i in r.output] == ["mcp_list_tools", "mcp_call", "message"]
    listed, call = r.output[0], r.output[1]
    assert listed.type == "mcp_list_tools" and listed.server_label == "calc"
    assert sorted(t.name for t in listed.tools) == ["add", "explode", "weather"]
    assert call.type == "mcp_call" and call.server_label == "calc" and call.name == "add"
    assert call.output == "5" and call.error is None and json.loads(call.arguments) == {"a": 2, "b": 3}
    # The model was offered the allowed tools with the server's schemas, and got the result.
    first, second = stack.upstream.scripts[model].requests[:2]
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert sorted(offered) == ["add", "weather"] and offered["add"]["parameters"]["required"] == ["a", "b"]
    assert [m["content"] for m in second["messages"] if m["role"] == "tool"] == ["5"]
    hits = mcp.hits[before:]
    # The listing step lists once; the official client re-reads the list inside a call's own session, to check
    # the result against the tool's output schema.
    assert [h.method for h in hits if h.method.startswith("tools/")] == ["tools/list", "tools/call", "tools/list"]
    assert all(h.headers.get("x-api-key") == "secret-1" for h in hits)
    echoed = r.tools[0].model_dump()
    assert echoed["headers"] is None and echoed["server_url"] == mcp.url  # credentials are never echoed
    async with stack.sessions() as s:  # ...nor kept once the response has ended
        stored = (await s.execute(text("SELECT request::text FROM responses WHERE id = :id"), {"id": r.id}))
        assert "secret-1" not in stored.scalar_one()
    # A later turn reuses the listing in its context: no second tools/list.
    again = await client.responses.create(model=model, previous_response_id=r.id, input="plus 1?",
                                          tools=[tool])  # type: ignore[list-item]
    assert [i.type for i in again.output] == ["mcp_call", "message"] and again.output_text == "then 6"
    assert len(mcp.calls("tools/list")) - len(mcp.calls("tools/call")) == len(
        [h for h in mcp.hits[:before] if h.method == "tools/list"]) - len(
        [h for h in mcp.hits[:before] if h.method == "tools/call"]) + 1, "listed again for the second turn"


async def test_streamed_with_the_spec_events(stack: Stack, mcp: ScriptedMcp) -> None:
    model = await stack.model(Reply(tool_calls=[("weather", {"city": "Oslo"})]), Reply(text="Sunny."))
    events = await stream_create(stack, await stack.new_key(), model=model, input="Weather?", tools=[calc(mcp)])
    assert_well_formed(events)  # every event validated against the spec's models on the way
    kinds = [e["type"] for e in events]
    for expected in ("response.mcp_list_tools.in_progress", "response.mcp_list_tools.completed",
                     "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
                     "response.mcp_call.in_progress", "response.mcp_call.completed"):
        assert expected in kinds, expected
    assert kinds.index("response.mcp_list_tools.completed") < kinds.index("response.mcp_call_arguments.delta")
    final = events[-1]["response"]
    assert final["output"][1]["output"] == "Sunny in Oslo, 21 degrees" and text_of(final) == "Sunny."
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == final["output"]


async def test_agents_sdk_hosted_mcp_tool(stack: Stack, mcp: ScriptedMcp) -> None:
    model = await stack.model(Reply(tool_calls=[("add", {"a": 40, "b": 2})]), Reply(text="42"))
    client = stack.openai(await stack.new_key())
    agent = Agent(name="calc", model=OpenAIResponsesModel(model, client), tools=[HostedMCPTool(tool_config={
        "type": "mcp", "server_label": "calc", "server_url": mcp.url, "require_approval": "never"})])
    result = await Runner.run(agent, "40 + 2?")
    assert result.final_output == "42"
    kinds = [item.type for item in result.new_items]
    assert "mcp_list_tools_item" in kinds and "tool_call_item" in kinds


async def test_tool_errors_reach_the_model_and_registered_servers_keep_their_secrets(
        stack: Stack, mcp: ScriptedMcp) -> None:
    label = "registered-calc"
    registered = await stack.admin("POST", "/admin/mcp-servers", {"label": label, "url": mcp.url,
                                                                  "headers": {"Authorization": "Bearer s3cret"}})
    assert registered["header_names"] == ["Authorization"] and "s3cret" not in json.dumps(registered)
    model = await stack.model(Reply(tool_calls=[("explode", {})]), Reply(text="it failed"))
    before = len(mcp.hits)
    body = await create(stack, await stack.new_key(), model=model, input="boom",
                        tools=[{"type": "mcp", "server_label": label, "require_approval": "never"}])
    assert body["status"] == "completed" and text_of(body) == "it failed"
    call = body["output"][1]
    assert call["status"] == "failed" and call["output"] is None and "exploded" in json.dumps(call["error"])
    assert "exploded" in stack.upstream.scripts[model].requests[1]["messages"][-1]["content"]
    assert {h.headers.get("authorization") for h in mcp.hits[before:]} == {"Bearer s3cret"}
    assert "s3cret" not in json.dumps(body)


async def test_a_server_outside_the_allow_list_is_a_400_that_requests_nothing(
        make_stack: StackFactory, mcp: ScriptedMcp) -> None:
    async with make_stack(fetch=FetchPolicy()) as stack:  # the default: nothing may be fetched
        model = await stack.model(Reply(text="never called"))
        key = await stack.new_key()
        before, rows = len(mcp.hits), await stack.count_rows()
        r = await stack.call("POST", "/v1/responses", key, {"model": model, "input": "x", "tools": [calc(mcp)]})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "tools[0].server_url" and r.json()["error"]["code"] == "url_not_allowed"
        assert len(mcp.hits) == before and await stack.count_rows() == rows
        assert stack.upstream.scripts[model].requests == []
    async with make_stack(fetch=FetchPolicy(allowed_hosts=["127.0.0.1"])) as stack:  # by name, not by address
        r = await stack.call("POST", "/v1/responses", await stack.new_key(),
                             {"model": await stack.model(Reply(text="x")), "input": "x", "tools": [calc(mcp)]})
        assert r.status_code == 400 and "non-public address" in r.json()["error"]["message"]


async def test_an_unregistered_label_without_url_is_a_404(stack: Stack) -> None:
    r = await stack.call("POST", "/v1/responses", await stack.new_key(), {
        "model": stack.settings.scripted_model, "input": "x",
        "tools": [{"type": "mcp", "server_label": "nobody", "require_approval": "never"}]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "mcp_server_not_found"
    assert r.json()["error"]["param"] == "tools[0].server_label"


async def test_an_unreachable_server_fails_the_response_with_424(make_stack: StackFactory) -> None:
    # Listing is retried like any step until its time budget runs out, then the response fails.
    async with make_stack(steps={"tool_retry_budget_seconds": 2.0}) as stack:
        model = await stack.model(Reply(text="never called"))
        tool = {"type": "mcp", "server_label": "gone", "server_url": "http://127.0.0.1:9/mcp",
                "require_approval": "never"}
        r = await stack.call("POST", "/v1/responses", await stack.new_key(), {"model": model, "input": "x",
                                                                              "tools": [tool]})
        assert r.status_code == 424, r.text
        assert "gone" in r.json()["error"]["message"] and stack.upstream.scripts[model].requests == []
    assert ADMIN_TOKEN  # (the admin token is shared by every stack in this module)
