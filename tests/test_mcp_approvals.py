"""Approvals: calls that wait for the client, run exactly once when approved, never when denied or replayed."""

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack, StackFactory
from tests.helpers import create, eventually, process, text_of
from tests.mcp_server import ScriptedMcp
from tests.scripted_upstream import Reply
from tests.test_durability import _alive, _env

pytestmark = pytest.mark.timeout(180)


def calc(mcp: ScriptedMcp, **extra: Any) -> dict[str, Any]:
    """The test server, with the spec's default approval (always)."""
    return {"type": "mcp", "server_label": "calc", "server_url": mcp.url, **extra}


def adds(mcp: ScriptedMcp) -> int:
    return sum(1 for h in mcp.calls() if h.params.get("name") == "add")


async def test_approve_runs_once_and_a_replay_runs_nothing(stack: Stack, mcp: ScriptedMcp) -> None:
    model = await stack.model(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply(text="It is 5."), per_turn=True)
    key = await stack.new_key()
    client = stack.openai(key)
    tools: Any = [calc(mcp)]
    before = adds(mcp)
    first = await client.responses.create(model=model, input="2+3?", tools=tools)
    assert first.status == "completed" and [i.type for i in first.output] == ["mcp_list_tools", "mcp_approval_request"]
    request = first.output[1]
    assert request.type == "mcp_approval_request" and request.name == "add" and request.server_label == "calc"
    assert adds(mcp) == before, "nothing runs before it is approved"
    approval: Any = [{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}]
    second = await client.responses.create(model=model, previous_response_id=first.id, input=approval, tools=tools)
    assert [i.type for i in second.output] == ["mcp_call", "message"] and second.output_text == "It is 5."
    call = second.output[0]
    assert call.type == "mcp_call" and call.approval_request_id == request.id and call.output == "5"
    assert adds(mcp) == before + 1
    sent = stack.upstream.scripts[model].requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"] and sent[2]["content"] == "5"
    # The same approval again, later in the chain: a 400 that runs and stores nothing.
    rows = await stack.count_rows()
    again = await stack.call("POST", "/v1/responses", key, {"model": model, "previous_response_id": second.id,
                                                            "input": approval, "tools": tools})
    assert again.status_code == 400 and again.json()["error"]["code"] == "approval_already_used"
    # One that answers no request of this context (made up, or another owner's): the same.
    made_up = [{**approval[0], "approval_request_id": "mcpr_nothing"}]
    for body in ({"previous_response_id": second.id, "input": made_up},
                 {"input": approval}):  # without the chain the request is not in its context
        r = await stack.call("POST", "/v1/responses", key, {"model": model, "tools": tools, **body})
        assert r.status_code == 400 and r.json()["error"]["code"] == "approval_request_not_found", r.text
    stranger = await stack.call("POST", "/v1/responses", await stack.new_key(), {
        "model": model, "previous_response_id": first.id, "input": approval, "tools": tools})
    assert stranger.status_code == 400 and stranger.json()["error"]["param"] == "previous_response_id"
    assert adds(mcp) == before + 1 and await stack.count_rows() == rows


async def test_deny_gives_the_model_a_refusal_and_filters_choose_per_tool(stack: Stack, mcp: ScriptedMcp) -> None:
    model = await stack.model(Reply(tool_calls=[("weather", {"city": "Oslo"}), ("add", {"a": 1, "b": 1})]),
                              Reply(text="Sunny; I may not add."), per_turn=True)
    key = await stack.new_key()
    tools = [calc(mcp, require_approval={"never": {"tool_names": ["weather"]}})]
    before = adds(mcp)
    first = await create(stack, key, model=model, input="weather and 1+1", tools=tools)
    kinds = [(i["type"], i.get("name")) for i in first["output"]]
    assert kinds == [("mcp_list_tools", None), ("mcp_call", "weather"), ("mcp_approval_request", "add")]
    assert first["output"][1]["output"] == "Sunny in Oslo, 21 degrees"
    request_id = first["output"][2]["id"]
    second = await create(stack, key, model=model, previous_response_id=first["id"], tools=tools, input=[
        {"type": "mcp_approval_response", "approval_request_id": request_id, "approve": False, "reason": "no"}])
    assert text_of(second) == "Sunny; I may not add." and [i["type"] for i in second["output"]] == ["message"]
    assert adds(mcp) == before
    sent = stack.upstream.scripts[model].requests[-1]["messages"]
    refusal = [m for m in sent if m["role"] == "tool" and m["tool_call_id"] == request_id]
    assert len(refusal) == 1 and "denied" in refusal[0]["content"] and "Reason: no" in refusal[0]["content"]


async def test_a_worker_killed_between_approval_and_call_runs_it_once(
        make_stack: StackFactory, mcp: ScriptedMcp, tmp_path: Path) -> None:
    async with make_stack(in_process_worker=False) as stack:
        model = await stack.model(Reply(tool_calls=[("add", {"a": 20, "b": 22})]), Reply(text="42."), per_turn=True)
        key = await stack.new_key()
        with process(["-m", "worker"], _env(stack), tmp_path / "worker1.log") as first_worker:
            first = await create(stack, key, model=model, input="20+22?", tools=[calc(mcp)])
            request_id = first["output"][-1]["id"]
            before, slow_lists = adds(mcp), len(mcp.calls("tools/list"))
            # The approving response also names a second server whose listing is slow: the step the worker dies in,
            # after the approval was stored and before the approved call ran.
            slow = {"type": "mcp", "server_label": "slow", "server_url": mcp.url + "?slow=1",
                    "require_approval": "never", "allowed_tools": ["weather"]}
            second = await create(stack, key, model=model, previous_response_id=first["id"], background=True,
                                  tools=[calc(mcp), slow], input=[{"type": "mcp_approval_response",
                                                                   "approval_request_id": request_id,
                                                                   "approve": True}])

            async def listing_slowly() -> bool:
                await _alive(first_worker)
                return len(mcp.calls("tools/list")) > slow_lists

            await eventually(listing_slowly, timeout=60, what="the slow listing in flight")
            first_worker.send_signal(signal.SIGKILL)
            first_worker.wait(timeout=10)
        assert adds(mcp) == before
        with process(["-m", "worker"], _env(stack), tmp_path / "worker2.log") as second_worker:
            async def finished() -> dict[str, Any] | None:
                await _alive(second_worker)
                got = (await stack.call("GET", f"/v1/responses/{second['id']}", key)).json()
                return got if got["status"] not in ("queued", "in_progress") else None

            final = await eventually(finished, timeout=90, interval=0.2, what="completion after the crash")
        assert final["status"] == "completed" and text_of(final) == "42.", json.dumps(final)[:2000]
        assert [i["type"] for i in final["output"]] == ["mcp_list_tools", "mcp_call", "message"]
        assert final["output"][1]["output"] == "42" and adds(mcp) == before + 1
