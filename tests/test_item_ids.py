"""Every id is unique: output items, their stream events and listed input items agree, even when an upstream
numbers its ids afresh each turn (`call_0`, `msg_0`…) as some local servers do."""

from typing import Any

import pytest

from tests.conftest import Stack
from tests.helpers import create
from tests.scripted_upstream import Reply, ToolBehaviour
from tests.streaming_helpers import stream_create

pytestmark = pytest.mark.timeout(120)


def output_ids(body: dict[str, Any]) -> list[str]:
    return [i["id"] for i in body["output"]]


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_numbered_upstream_ids_are_made_unique(stack: Stack, api: str) -> None:
    """A streamed server-side loop over an upstream whose every turn reuses the same ids, then a client-side call
    continued with previous_response_id: every item id and call id of the conversation is distinct, and the tool
    output reaches the model paired with its own call."""
    tool = await stack.tool(ToolBehaviour())
    replies = [Reply(reasoning="a", tool_calls=[(tool, {"q": "1"})], numbered_ids=True),
               Reply(reasoning="b", tool_calls=[("client_fn", {"q": "2"})], numbered_ids=True),
               Reply(reasoning="c", tool_calls=[("client_fn", {"q": "3"})], numbered_ids=True),
               Reply(reasoning="d", text="done", numbered_ids=True)]
    model = await stack.model(*replies, per_turn=True, api=api)
    key = await stack.new_key()
    tools = [{"type": "function", "name": tool}, {"type": "function", "name": "client_fn"}]
    events = await stream_create(stack, key, model=model, input="go", tools=tools)
    first = events[-1]["response"]
    assert [i["type"] for i in first["output"]] == ["reasoning", "mcp_call", "reasoning", "function_call"]
    streamed = {e["item"]["id"] for e in events if e["type"] == "response.output_item.done"}
    assert streamed == set(output_ids(first)) and len(streamed) == 4
    call = first["output"][-1]
    second = await create(stack, key, model=model, previous_response_id=first["id"], tools=tools,
                          input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "two"}])
    third = await create(stack, key, model=model, previous_response_id=second["id"], tools=tools,
                         input=[{"type": "function_call_output", "call_id": second["output"][-1]["call_id"],
                                 "output": "three"}])
    assert third["output"][-1]["content"][0]["text"] == "done"
    everything = output_ids(first) + output_ids(second) + output_ids(third)
    assert len(everything) == len(set(everything)), everything
    calls = [i["call_id"] for r in (first, second) for i in r["output"] if i["type"] == "function_call"]
    assert len(set(calls)) == 2, calls
    listed = (await stack.call("GET", f"/v1/responses/{third['id']}/input_items", key)).json()["data"]
    assert len({i["id"] for i in listed}) == len(listed)
    # The last model call saw each output after its own call.
    last = stack.upstream.scripts[model].requests[-1]
    if api == "chat":
        pairs = [(m["tool_call_id"], m["content"]) for m in last["messages"] if m["role"] == "tool"]
        assert pairs[1:] == [(calls[0], "two"), (calls[1], "three")]
    else:
        pairs = [(i["call_id"], i["output"]) for i in last["input"] if i["type"] == "function_call_output"]
        assert pairs[1:] == [(calls[0], "two"), (calls[1], "three")]


async def test_duplicate_ids_in_one_input_are_a_400(stack: Stack) -> None:
    key = await stack.new_key()
    twice = {"id": "msg_same", "type": "message", "role": "user", "content": "hi"}
    r = await stack.call("POST", "/v1/responses", key, {"model": stack.settings.scripted_model,
                                                         "input": [twice, twice]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[1].id"
