"""POST /v1/responses/compact: a durable summary of a conversation window, and continuing from it."""

import asyncio
from typing import Any

from sqlalchemy import text

from tests.conftest import Stack
from tests.helpers import create, eventually, text_of
from tests.scripted_upstream import Reply

WINDOW = [{"role": "user", "content": "We launch on Tuesday and notify support first."},
          {"role": "assistant", "content": "Understood: Tuesday, support notified beforehand."}]
SUMMARY = "Launch Tuesday; notify support first."


async def count_compactions(stack: Stack) -> int:
    async with stack.sessions() as s:
        return int((await s.execute(text("SELECT count(*) FROM compactions"))).scalar_one())


async def test_compact_then_continue_from_the_compaction_item(stack: Stack) -> None:
    summarizer = await stack.model(Reply(text=SUMMARY, usage=(40, 9)))
    client = stack.openai(await stack.new_key())
    compacted = await client.responses.compact(model=summarizer, input=WINDOW)  # type: ignore[arg-type]
    assert compacted.object == "response.compaction"
    assert [i.type for i in compacted.output] == ["compaction"]
    assert compacted.usage.input_tokens == 40 and compacted.usage.output_tokens == 9
    asked = stack.upstream.scripts[summarizer].requests[0]["messages"]
    assert asked[0]["role"] == "system" and "Summarize" in asked[0]["content"]
    assert [m["content"] for m in asked[1:]] == [m["content"] for m in WINDOW]

    model = await stack.model(Reply(text="Support first, then the Tuesday launch."))
    follow = await client.responses.create(model=model, input=[
        *[item.model_dump(exclude_none=True) for item in compacted.output],
        {"role": "user", "content": "What do we do before launching?"}])  # type: ignore[list-item]
    assert follow.output_text == "Support first, then the Tuesday launch."
    seen = stack.upstream.scripts[model].requests[0]["messages"]
    assert seen[0]["role"] == "system" and seen[0]["content"].endswith(SUMMARY)
    assert all("Understood" not in str(m["content"]) for m in seen), "the compacted window is not re-sent"
    items = await client.responses.input_items.list(follow.id, order="asc")  # strict validation
    assert [i.type for i in items.data] == ["compaction", "message"]


async def test_compact_a_previous_response_chain(stack: Stack) -> None:
    first = await stack.model(Reply(text="The code word is heron."))
    summarizer = await stack.model(Reply(text="Code word: heron."))
    key = await stack.new_key()
    earlier = await create(stack, key, model=first, input="Remember a code word.")
    r = await stack.call("POST", "/v1/responses/compact", key,
                         {"model": summarizer, "previous_response_id": earlier["id"]})
    assert r.status_code == 200, r.text
    asked = stack.upstream.scripts[summarizer].requests[0]["messages"]
    assert [m["content"] for m in asked[1:]] == ["Remember a code word.", text_of(earlier)]


async def test_a_compaction_is_usable_only_by_its_owner(stack: Stack) -> None:
    summarizer = await stack.model(Reply(text=SUMMARY))
    model = await stack.model(Reply(text="unused"))
    mine, theirs = await stack.new_key(), await stack.new_key()
    r = await stack.call("POST", "/v1/responses/compact", mine, {"model": summarizer, "input": WINDOW})
    item: dict[str, Any] = r.json()["output"][0]
    before = await stack.count_rows()
    stolen = await stack.call("POST", "/v1/responses", theirs, {"model": model, "input": [item]})
    assert stolen.status_code == 400
    assert stolen.json()["error"]["param"] == "input[0].encrypted_content"
    forged = await stack.call("POST", "/v1/responses", mine, {"model": model, "input": [
        {"type": "compaction", "encrypted_content": "cmp_made_up"}]})
    assert forged.status_code == 400
    assert await stack.count_rows() == before and stack.upstream.scripts[model].requests == []


async def test_bad_compact_requests_write_nothing(stack: Stack) -> None:
    failing = await stack.model(Reply(status=400, error_body={"error": {"message": "context too long",
                                                                        "type": "invalid_request_error"}}))
    key = await stack.new_key()
    before = await count_compactions(stack)
    no_model = await stack.call("POST", "/v1/responses/compact", key, {"input": WINDOW})
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"
    nothing = await stack.call("POST", "/v1/responses/compact", key, {"model": failing})
    assert nothing.status_code == 400 and nothing.json()["error"]["param"] == "input"
    assert await count_compactions(stack) == before
    upstream_says_no = await stack.call("POST", "/v1/responses/compact", key, {"model": failing, "input": WINDOW})
    assert upstream_says_no.status_code == 400
    assert upstream_says_no.json()["error"]["message"] == "context too long"
    async with stack.sessions() as s:
        status = (await s.execute(text("SELECT status FROM compactions ORDER BY created_at DESC LIMIT 1"))).scalar()
    assert status == "failed"


async def test_context_management_compacts_inside_the_loop_and_the_next_turn_uses_it(stack: Stack) -> None:
    tool = await stack.tool()
    model = await stack.model(Reply(tool_calls=[(tool, {"q": "facts"})], usage=(500, 20)),  # context 520 ≥ 400
                              Reply(text=SUMMARY, usage=(30, 8)),  # the compaction step's summary
                              Reply(text="done", usage=(50, 2)), Reply(text="Tuesday.", usage=(60, 3)))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="Plan the launch.", tools=[{"type": "function", "name": tool}],
                        context_management=[{"type": "compaction", "compact_threshold": 400}])
    assert [i["type"] for i in body["output"]] == ["mcp_call", "compaction", "message"]
    assert body["usage"]["input_tokens"] == 580 and body["usage"]["output_tokens"] == 30
    requests = stack.upstream.scripts[model].requests
    assert "Summarize" in requests[1]["messages"][0]["content"]
    after = requests[2]["messages"]
    assert after[0] == {"role": "system", "content": after[0]["content"]} and after[0]["content"].endswith(SUMMARY)
    assert all("Plan the launch." not in str(m.get("content")) for m in after), "the compacted window is gone"
    steps = (await stack.call("GET", f"/v1/responses/{body['id']}/steps", key)).json()["data"]
    assert [s["kind"] for s in steps] == ["model_call", "tool_call", "compaction", "model_call"]

    follow = await create(stack, key, model=model, input="When?", previous_response_id=body["id"])
    assert text_of(follow) == "Tuesday."
    seen = [m["content"] for m in requests[3]["messages"]]
    assert seen[0].endswith(SUMMARY) and seen[1:] == ["done", "When?"]


async def test_context_management_below_threshold_does_not_compact(stack: Stack) -> None:
    tool = await stack.tool()
    model = await stack.model(Reply(tool_calls=[(tool, {"q": "x"})], usage=(100, 5)), Reply(text="done"))
    body = await create(stack, await stack.new_key(), model=model, input="go", tools=[{"type": "function",
                        "name": tool}], context_management=[{"type": "compaction", "compact_threshold": 400}])
    assert [i["type"] for i in body["output"]] == ["mcp_call", "message"]
    assert len(stack.upstream.scripts[model].requests) == 2


async def test_a_compaction_whose_workflow_is_terminated_does_not_stay_running(stack: Stack) -> None:
    summarizer = await stack.model(Reply(text="never", delay=60))
    key = await stack.new_key()
    request = asyncio.create_task(stack.call("POST", "/v1/responses/compact", key,
                                             {"model": summarizer, "input": WINDOW}))
    await eventually(lambda: _true(len(stack.upstream.scripts[summarizer].requests) == 1), what="summary call")
    async with stack.sessions() as s:
        cid = (await s.execute(text("SELECT id FROM compactions WHERE model = :m"), {"m": summarizer})).scalar_one()
    await stack.temporal.get_workflow_handle(cid).terminate(reason="operator")
    r = await asyncio.wait_for(request, timeout=30)
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
    async with stack.sessions() as s:
        status = (await s.execute(text("SELECT status FROM compactions WHERE id = :id"), {"id": cid})).scalar_one()
    assert status == "failed"


async def _true(value: bool) -> bool:
    return value
