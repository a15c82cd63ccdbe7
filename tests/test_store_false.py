"""`store: false`: the response is kept only while it runs; afterwards nothing of it can be read or reused."""

from datetime import timedelta
from typing import Any

from db import responses as db
from tests.conftest import Stack
from tests.helpers import create, eventually, text_of
from tests.scripted_upstream import Reply
from tests.streaming_helpers import assert_well_formed, sse_events


async def test_blocking_unstored_response_answers_then_is_gone(stack: Stack) -> None:
    model = await stack.model(Reply(text="only once"), Reply(text="unused"))
    key = await stack.new_key()
    before = await stack.count_rows()
    body = await create(stack, key, model=model, input="hi", store=False)
    assert body["status"] == "completed" and body["store"] is False and text_of(body) == "only once"
    assert await stack.count_rows() == before
    for path in (f"/v1/responses/{body['id']}", f"/v1/responses/{body['id']}/input_items"):
        assert (await stack.call("GET", path, key)).status_code == 404
    follow = await stack.call("POST", "/v1/responses", key, {"model": model, "input": "again",
                                                             "previous_response_id": body["id"]})
    assert follow.status_code == 400 and follow.json()["error"]["code"] == "previous_response_not_found"
    ref = await stack.call("POST", "/v1/responses", key, {"model": model, "input": [
        {"type": "item_reference", "id": body["output"][0]["id"]}]})
    assert ref.status_code == 400 and ref.json()["error"]["code"] == "item_not_found"


async def test_codex_style_client_resends_everything_with_store_false(stack: Stack) -> None:
    model = await stack.model(Reply(tool_calls=[("shell", {"cmd": "ls"})]), Reply(text="two files"))
    key = await stack.new_key()
    tools = [{"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {
        "cmd": {"type": "string"}}}}]
    first = await create(stack, key, model=model, input="list files", tools=tools, store=False)
    call = first["output"][0]
    second = await create(stack, key, model=model, tools=tools, store=False, input=[
        {"role": "user", "content": "list files"}, call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "a.txt b.txt"}])
    assert text_of(second) == "two files"
    tool_result = stack.upstream.scripts[model].requests[1]["messages"][-1]
    assert tool_result == {"role": "tool", "tool_call_id": call["call_id"], "content": "a.txt b.txt"}


async def test_streamed_unstored_response_is_whole_then_gone(stack: Stack) -> None:
    model = await stack.model(Reply(text="streamed once, kept never"))
    key = await stack.new_key()
    before = await stack.count_rows()
    async with stack.http.stream("POST", stack.url + "/v1/responses", headers={"Authorization": f"Bearer {key}"},
                                 json={"model": model, "input": "hi", "stream": True, "store": False}) as r:
        events = [e async for e in sse_events(r)]
    assert_well_formed(events)
    assert events[-1]["type"] == "response.completed" and events[-1]["response"]["store"] is False

    async def gone() -> bool:
        return await stack.count_rows() == before

    await eventually(gone, what="the store-false response deleted after its stream")
    assert (await stack.call("GET", f"/v1/responses/{events[0]['response']['id']}", key,
                             params={"stream": "true"})).status_code == 404


async def test_unstored_cannot_be_background_or_idempotent(stack: Stack) -> None:
    model = await stack.model(Reply(text="unused"))
    key = await stack.new_key()
    before = await stack.count_rows()
    bodies: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"model": model, "input": "x", "store": False, "background": True}, {}),
        ({"model": model, "input": "x", "store": False}, {"Idempotency-Key": "k1"})]
    for body, headers in bodies:
        r = await stack.call("POST", "/v1/responses", key, body, headers=headers)
        assert r.status_code == 400 and r.json()["error"]["param"] == "store", r.text
    assert await stack.count_rows() == before and stack.upstream.scripts[model].requests == []


async def test_sweep_query_removes_unstored_responses_whose_client_left(stack: Stack) -> None:
    model = await stack.model(Reply(text="nobody reads this", delay=1.0))  # ends after the client left
    key = await stack.new_key()
    async with stack.http.stream("POST", stack.url + "/v1/responses", headers={"Authorization": f"Bearer {key}"},
                                 json={"model": model, "input": "hi", "stream": True, "store": False}) as r:
        first = await anext(sse_events(r))  # then the client goes away
    rid = first["response"]["id"]

    async def ended() -> bool:
        async with stack.sessions() as s:
            row = await db.get_response(s, rid)
        return row is not None and row.completed_at is not None  # its relay did not delete it

    await eventually(ended, what="the response ended")
    async with stack.sessions() as s:
        assert await db.delete_ended_unstored(s, older_than=timedelta(0)) >= 1
        assert await db.get_response(s, rid) is None
