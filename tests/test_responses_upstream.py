"""Aliases registered with `--api responses`: each step calls the upstream's own /responses, statelessly, and its
items (reasoning with encrypted_content, messages, function calls) pass through into our output and back."""

import json
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import Stack, StackFactory
from tests.helpers import create, eventually, text_of
from tests.scripted_upstream import Reply, ToolBehaviour
from tests.streaming_helpers import assert_well_formed, replay, stream_create

pytestmark = pytest.mark.timeout(120)


def three_step_replies(tool: str) -> list[Reply]:
    """A loop of three model turns, each reasoning first: a tool call, another, then the answer."""
    return [Reply(reasoning="first I look", tool_calls=[(tool, {"q": "1"})]),
            Reply(reasoning="then I look again", tool_calls=[(tool, {"q": "2"})]),
            Reply(reasoning="now I know", text="both looked up")]


def assert_reasoning_carried(requests: list[dict[str, Any]], output: list[dict[str, Any]]) -> None:
    """Every reasoning item of the output came from the upstream and went back to it, byte for byte, in every
    later turn; every request was stateless and asked for encrypted reasoning."""
    blobs = [i["encrypted_content"] for i in output if i["type"] == "reasoning"]
    assert len(blobs) == 3 and len(set(blobs)) == 3
    for turn, request in enumerate(requests):
        assert request["store"] is False and "reasoning.encrypted_content" in request["include"]
        sent = [i["encrypted_content"] for i in request["input"] if i.get("type") == "reasoning"]
        assert sent == blobs[:turn], f"turn {turn + 1} was given {sent}"


async def test_tool_loop_passes_items_through(stack: Stack) -> None:
    tool = await stack.tool(ToolBehaviour())
    model = await stack.model(*three_step_replies(tool), per_turn=True, api="responses")
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="look it up", instructions="be brief",
                        tools=[{"type": "function", "name": tool}], reasoning={"effort": "high"})
    assert body["status"] == "completed" and text_of(body) == "both looked up"
    assert [i["type"] for i in body["output"]] == ["reasoning", "mcp_call", "reasoning", "mcp_call", "reasoning",
                                                  "message"]
    script = stack.upstream.scripts[model]
    assert len(script.requests) == 3
    assert [i["encrypted_content"] for i in body["output"] if i["type"] == "reasoning"] == script.encrypted
    assert_reasoning_carried(script.requests, body["output"])
    first, last = script.requests[0], script.requests[-1]
    assert first["instructions"] == "be brief" and first["reasoning"]["effort"] == "high"
    assert first["tools"][0]["name"] == tool and first["model"] == model
    # Our server-side calls reach the upstream as its function calls with their outputs.
    calls = [i for i in last["input"] if i["type"] == "function_call"]
    outputs = {i["call_id"]: i["output"] for i in last["input"] if i["type"] == "function_call_output"}
    mcp = [i for i in body["output"] if i["type"] == "mcp_call"]
    assert [c["call_id"] for c in calls] == [m["id"] for m in mcp]
    assert [json.loads(outputs[m["id"]])["args"] for m in mcp] == [{"q": "1"}, {"q": "2"}]
    assert not any(k.startswith("_") for i in last["input"] for k in i), "our bookkeeping leaked upstream"
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] == 3 + 4 + 3
    assert body["usage"]["input_tokens"] == 30


async def test_streamed_loop_and_replay_agree(stack: Stack) -> None:
    tool = await stack.tool(ToolBehaviour())
    model = await stack.model(*three_step_replies(tool), per_turn=True, api="responses")
    key = await stack.new_key()
    events = await stream_create(stack, key, model=model, input="look it up", tools=[{"type": "function",
                                                                                     "name": tool}])
    assert_well_formed(events)
    final = events[-1]["response"]
    assert final["status"] == "completed" and text_of(final) == "both looked up"
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == ["reasoning", "mcp_call", "reasoning", "mcp_call", "reasoning", "message"]
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.done"] == list(range(6))
    assert done == final["output"]
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "both looked up"
    assert_reasoning_carried(stack.upstream.scripts[model].requests, final["output"])
    assert await replay(stack, key, final["id"]) == events
    stored = (await stack.call("GET", f"/v1/responses/{final['id']}", key)).json()
    assert stored["output"] == final["output"]


async def test_upstream_errors_and_truncated_answers(stack: Stack) -> None:
    key = await stack.new_key()
    refused = await stack.model(Reply(status=400, error_body={"error": {"message": "bad schema", "param": "text"}}),
                                api="responses")
    r = await stack.call("POST", "/v1/responses", key, {"model": refused, "input": "hi"})
    assert r.status_code == 400 and "bad schema" in r.json()["error"]["message"]
    flaky = await stack.model(Reply(status=503), Reply(text="second time lucky"), api="responses")
    body = await create(stack, key, model=flaky, input="hi")
    assert text_of(body) == "second time lucky" and len(stack.upstream.scripts[flaky].requests) == 2
    cut = await stack.model(Reply(text="half an ans", finish_reason="length"), api="responses")
    body = await create(stack, key, model=cut, input="hi", max_output_tokens=16)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert stack.upstream.scripts[cut].requests[0]["max_output_tokens"] == 16


async def test_a_second_agentrunner_as_the_upstream(make_stack: StackFactory) -> None:
    """An outer agentrunner whose alias speaks Responses to an inner agentrunner (own API, worker and task queue)
    that reasons over a chat upstream: a client-side tool round trip, streamed, stateless on the inner side."""
    async with make_stack() as inner, make_stack() as outer:
        chat_alias = await inner.model(Reply(reasoning="I need the weather", tool_calls=[("weather", {"q": "Oslo"})]),
                                       Reply(text="It rains in Oslo."), per_turn=True)
        inner_key = await inner.new_key()
        alias = f"via-inner-{chat_alias}"
        await outer.admin("POST", "/admin/models", {"alias": alias, "base_url": inner.url + "/v1", "api": "responses",
                                                    "upstream_model": chat_alias, "api_key": inner_key})
        key = await outer.new_key()
        weather = {"type": "function", "name": "weather", "parameters": {
            "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}
        events = await stream_create(outer, key, model=alias, input="Weather in Oslo?", tools=[weather],
                                     reasoning={"summary": "auto"})
        assert_well_formed(events)
        first = events[-1]["response"]
        assert [i["type"] for i in first["output"]] == ["reasoning", "function_call"]
        reasoning, call = first["output"]
        assert reasoning["content"][0]["text"] == "I need the weather"
        assert reasoning["summary"][0]["text"] == "I need the weather"
        assert call["name"] == "weather" and json.loads(call["arguments"]) == {"q": "Oslo"}
        client = outer.openai(key)
        second = await client.responses.create(
            model=alias, previous_response_id=first["id"], tools=[weather],  # type: ignore[list-item]
            input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "rain"}])
        assert second.status == "completed" and second.output_text == "It rains in Oslo."
        # The inner server saw the whole conversation each time, the call and its output unchanged...
        chat = inner.upstream.scripts[chat_alias].requests[-1]["messages"]
        assert [m["role"] for m in chat] == ["user", "assistant", "tool"]
        assert chat[1]["tool_calls"][0]["id"] == call["call_id"] and chat[2]["content"] == "rain"
        # ...and kept nothing once each answer was read: store false was asked of it.
        async def inner_rows() -> bool:
            async with inner.sessions() as s:
                return (await s.execute(text("SELECT count(*) FROM responses WHERE model = :m"),
                                        {"m": chat_alias})).scalar_one() == 0

        await eventually(inner_rows, timeout=10, what="the inner server's store-false responses deleted")


async def test_stream_cut_mid_answer_is_retried_without_repeating(stack: Stack) -> None:
    """The upstream's stream breaks after two words: the retry continues the same message, and the reasoning the
    client already saw (the first attempt's, stored with it) is neither repeated nor replaced."""
    answer = "one two three four"
    model = await stack.model(Reply(reasoning="hm", text=answer, drop_after=2), Reply(reasoning="hm again",
                                                                                     text=answer), api="responses")
    key = await stack.new_key()
    events = await stream_create(stack, key, model=model, input="count")
    assert_well_formed(events)
    final = events[-1]["response"]
    assert final["status"] == "completed" and text_of(final) == answer
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["encrypted_content"] == stack.upstream.scripts[model].encrypted[0]
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == answer
    assert [e["item"]["type"] for e in events if e["type"] == "response.output_item.done"] == ["reasoning", "message"]


async def test_compaction_over_a_responses_alias_then_a_turn_that_uses_it(stack: Stack) -> None:
    """The summary is asked of the upstream's own /responses; the next turn gives it the summary in place of the
    window it replaces."""
    model = await stack.model(Reply(text="They talked about Oslo."), Reply(text="Oslo, as discussed."),
                              api="responses")
    client = stack.openai(await stack.new_key())
    compacted = await client.responses.compact(model=model, input=[
        {"role": "user", "content": "Tell me about Oslo."}, {"role": "assistant", "content": "Oslo is a city."}])
    item = compacted.output[0]
    assert item.type == "compaction"
    asked = stack.upstream.scripts[model].requests[0]
    assert asked["store"] is False and "summar" in asked["instructions"].lower()
    assert [(i["role"], i["content"][0]["text"]) for i in asked["input"]] == [
        ("user", "Tell me about Oslo."), ("assistant", "Oslo is a city.")]
    history: list[Any] = [item.model_dump(exclude_none=True), {"role": "user", "content": "Which city?"}]
    follow = await client.responses.create(model=model, input=history)
    assert follow.output_text == "Oslo, as discussed."
    sent = stack.upstream.scripts[model].requests[1]["input"]
    assert sent[0]["role"] == "developer" and sent[0]["content"].endswith("They talked about Oslo.")
    assert [i.get("role") for i in sent] == ["developer", "user"]
