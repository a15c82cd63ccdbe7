"""Conversations: the API, responses that read and append to one, never interleaved, owner-scoped."""

import asyncio
from typing import Any

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled
from agents.memory import OpenAIConversationsSession

from tests.conftest import Stack
from tests.helpers import create, eventually
from tests.scripted_upstream import Reply
from tests.wire import assert_wire

pytestmark = pytest.mark.timeout(120)
set_tracing_disabled(True)  # the Agents SDK would otherwise export traces to the internet


def said(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) of the chat messages an upstream was sent."""
    return [(m["role"], m["content"] if isinstance(m["content"], str) else "".join(
        p.get("text", "") for p in m["content"])) for m in messages]


async def test_four_turns_through_the_openai_sdk(stack: Stack) -> None:
    model = await stack.model(*[Reply(text=f"answer {n}") for n in range(1, 5)])
    client = stack.openai(await stack.new_key())
    conv = await client.conversations.create(metadata={"topic": "numbers"},
                                             items=[{"role": "developer", "content": "Count with me."}])
    assert conv.metadata == {"topic": "numbers"}
    responses = []
    for n in range(1, 5):
        r = await client.responses.create(model=model, conversation=conv.id, input=f"turn {n}")
        assert r.status == "completed" and r.conversation is not None and r.conversation.id == conv.id
        responses.append(r)
    # Each turn's model call saw the conversation so far, then its own input.
    sent = said(stack.upstream.scripts[model].requests[3]["messages"])
    assert sent == [("system", "Count with me."), ("user", "turn 1"), ("assistant", "answer 1"),
                    ("user", "turn 2"), ("assistant", "answer 2"), ("user", "turn 3"), ("assistant", "answer 3"),
                    ("user", "turn 4")]
    items = [i async for i in client.conversations.items.list(conv.id, order="asc", limit=3)]  # strict, paged
    assert [(i.type, getattr(i, "role", None)) for i in items] == [("message", "developer")] + [
        ("message", "user"), ("message", "assistant")] * 4
    # A response's input and output items are the conversation's, with the same ids, in order.
    for n, r in enumerate(responses):
        inputs = [i.id async for i in client.responses.input_items.list(r.id, order="asc")]
        assert [i.id for i in items[1 + 2 * n: 3 + 2 * n]] == [*inputs, r.output[0].id]
    newest = await client.conversations.items.list(conv.id, limit=1)  # default order: newest first
    assert newest.data[0].id == responses[-1].output[0].id and newest.has_more


async def test_agents_sdk_conversation_session_and_server_conversation(stack: Stack) -> None:
    turns = [("I am Ada.", "Hi Ada."), ("Who am I?", "You are Ada."), ("I like tea.", "Noted."),
             ("What do I like?", "Tea.")]
    model = await stack.model(*[Reply(text=answer) for _, answer in turns * 2])
    client = stack.openai(await stack.new_key())
    agent = Agent(name="helper", instructions="Be brief.", model=OpenAIResponsesModel(model, client))
    expected = [("system", "Be brief.")] + [m for q, a in turns for m in (("user", q), ("assistant", a))]
    session = OpenAIConversationsSession(openai_client=client)  # client-side history kept in a conversation
    for question, answer in turns:
        assert (await Runner.run(agent, question, session=session)).final_output == answer
    assert said(stack.upstream.scripts[model].requests[3]["messages"]) == expected[:-1]
    history = await session.get_items()
    assert [(i.get("role"), i["content"] if isinstance(i["content"], str) else i["content"][0]["text"])
            for i in history] == expected[1:]
    # The other way: the server keeps the history (`conversation_id` reaches responses.create as `conversation`).
    conv = await client.conversations.create()
    for question, answer in turns:
        assert (await Runner.run(agent, question, conversation_id=conv.id)).final_output == answer
    assert said(stack.upstream.scripts[model].requests[7]["messages"]) == expected[:-1]
    items = [i async for i in client.conversations.items.list(conv.id, order="asc")]
    assert [(i.role, i.content[0].text) for i in items] == expected[1:]  # type: ignore[union-attr]


async def test_two_responses_on_one_conversation_never_interleave(stack: Stack) -> None:
    model = await stack.model(Reply(text="slow first", delay=1.5), Reply(text="second"))
    key = await stack.new_key()
    client = stack.openai(key)
    conv = await client.conversations.create()
    # Two creates at once: the conversation's lock lets one in; the other is a 409 that wrote nothing.
    first, second = await asyncio.gather(*(stack.call("POST", "/v1/responses", key, {
        "model": model, "conversation": conv.id, "input": f"go {n}", "background": True}) for n in (1, 2)))
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 409], (first.text, second.text)
    refused = first if first.status_code == 409 else second
    assert refused.json()["error"]["code"] == "conversation_busy" and refused.json()["error"]["param"] == "conversation"
    running = (first if first.status_code == 200 else second).json()
    ran = "go 1" if first.status_code == 200 else "go 2"

    async def ended() -> bool:
        got = (await stack.call("GET", f"/v1/responses/{running['id']}", key)).json()
        return got["status"] == "completed"

    await eventually(ended, timeout=30, what="the first response")
    later = await create(stack, key, model=model, conversation={"id": conv.id}, input="after")
    assert later["status"] == "completed" and later["conversation"] == {"id": conv.id}
    items = [i async for i in client.conversations.items.list(conv.id, order="asc")]
    assert [(i.role, i.content[0].text) for i in items] == [  # type: ignore[union-attr]
        ("user", ran), ("assistant", "slow first"), ("user", "after"), ("assistant", "second")]


async def test_items_endpoints_and_a_failed_turn_adds_nothing(stack: Stack) -> None:
    model = await stack.model(Reply(status=400, error_body={"error": {"message": "no"}}), Reply(text="ok"))
    key = await stack.new_key()
    client = stack.openai(key)
    conv = await client.conversations.create(items=[{"type": "message", "role": "user", "content": "one"}])
    added = await client.conversations.items.create(conv.id, items=[
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "two"}]},
        {"type": "function_call", "call_id": "call_x", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_x", "output": "three"}])
    assert [i.type for i in added.data] == ["message", "function_call", "function_call_output"]
    got = await client.conversations.items.retrieve(added.data[1].id, conversation_id=conv.id)
    assert got.type == "function_call" and got.call_id == "call_x"  # type: ignore[union-attr]
    again = await stack.call("POST", f"/v1/conversations/{conv.id}/items", key,
                             {"items": [{"id": added.data[0].id, "type": "message", "role": "user",
                                         "content": "dup"}]})
    assert again.status_code == 400 and again.json()["error"]["param"] == "items"
    after = await client.conversations.items.delete(added.data[0].id, conversation_id=conv.id)
    assert after.id == conv.id
    failed = await stack.call("POST", "/v1/responses", key, {"model": model, "conversation": conv.id, "input": "x"})
    assert failed.status_code == 400
    page = (await stack.call("GET", f"/v1/conversations/{conv.id}/items?order=asc", key)).json()
    for item in page["data"]:
        assert_wire(item, "item")
    assert [i["type"] for i in page["data"]] == ["message", "function_call", "function_call_output"]
    updated = await client.conversations.update(conv.id, metadata={"k": "v"})
    assert updated.metadata == {"k": "v"}
    r = await client.responses.create(model=model, conversation=conv.id, input="four")
    deleted = await client.conversations.delete(conv.id)
    assert deleted.deleted and deleted.id == conv.id
    assert (await stack.call("GET", f"/v1/conversations/{conv.id}", key)).status_code == 404
    kept = await client.responses.retrieve(r.id)  # its responses stay retrievable
    assert kept.output_text == "ok" and kept.conversation is not None and kept.conversation.id == conv.id


async def test_bad_uses_and_other_owners(stack: Stack) -> None:
    model = await stack.model(Reply(text="hi"))
    key, stranger = await stack.new_key(), await stack.new_key()
    conv = (await stack.call("POST", "/v1/conversations", key, {"items": [{"role": "user", "content": "a"}]})).json()
    first = await create(stack, key, model=model, input="hi")
    item_id = (await stack.call("GET", f"/v1/conversations/{conv['id']}/items", key)).json()["data"][0]["id"]
    cid = conv["id"]
    for method, path, body in [("GET", f"/v1/conversations/{cid}", None),
                               ("POST", f"/v1/conversations/{cid}", {"metadata": {}}),
                               ("DELETE", f"/v1/conversations/{cid}", None),
                               ("GET", f"/v1/conversations/{cid}/items", None),
                               ("POST", f"/v1/conversations/{cid}/items", {"items": [{"role": "user",
                                                                                     "content": "x"}]}),
                               ("GET", f"/v1/conversations/{cid}/items/{item_id}", None),
                               ("DELETE", f"/v1/conversations/{cid}/items/{item_id}", None),
                               ("POST", "/v1/responses", {"model": model, "input": "x", "conversation": cid})]:
        r = await stack.call(method, path, stranger, body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["type"] == "not_found_error"
    before = await stack.count_rows()
    for body, param in [({"conversation": cid, "previous_response_id": first["id"]}, "conversation"),
                        ({"conversation": cid, "store": False}, "store"),
                        ({"conversation": {"nope": 1}}, "conversation")]:
        r = await stack.call("POST", "/v1/responses", key, {"model": model, "input": "x", **body})
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    assert await stack.count_rows() == before
    for body, param in [({"metadata": {str(n): "v" for n in range(17)}}, "metadata"), ({"extra": 1}, "extra"),
                        ({"items": [{"role": "wizard", "content": "x"}]}, "items[0].role")]:
        r = await stack.call("POST", "/v1/conversations", key, body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    still = (await stack.call("GET", f"/v1/conversations/{cid}/items", key)).json()["data"]
    assert [i["id"] for i in still] == [item_id]
