"""Structured outputs and the request fields that reach the upstream, through the real client libraries."""

import json
from typing import Any

from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled
from pydantic import BaseModel

from tests.conftest import Stack
from tests.helpers import create
from tests.scripted_upstream import Reply
from tests.wire import assert_wire

set_tracing_disabled(True)  # the Agents SDK would otherwise export traces to the internet


class City(BaseModel):
    name: str
    population: int


PARIS = City(name="Paris", population=2_100_000)


async def test_openai_parse_sends_the_schema_and_returns_the_parsed_object(stack: Stack) -> None:
    model = await stack.model(Reply(text=PARIS.model_dump_json()))
    client = stack.openai(await stack.new_key())
    parsed = await client.responses.parse(model=model, input="Biggest French city?", text_format=City,
                                          reasoning={"effort": "low"})
    assert parsed.output_parsed == PARIS
    sent = stack.upstream.scripts[model].requests[0]
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "City" and fmt["json_schema"]["strict"]
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"name", "population"}
    assert sent["reasoning_effort"] == "low"
    # The echo is what the client asked for.
    assert parsed.text is not None and parsed.text.format.type == "json_schema"
    assert parsed.reasoning is not None and parsed.reasoning.effort == "low"


async def test_builtin_scripted_model_answers_in_the_requested_schema(stack: Stack) -> None:
    client = stack.openai(await stack.new_key())
    parsed = await client.responses.parse(model=stack.settings.scripted_model, input="Oslo", text_format=City)
    assert parsed.output_parsed == City(name="Oslo", population=1)


async def test_agents_sdk_output_type(stack: Stack) -> None:
    model = await stack.model(Reply(text=PARIS.model_dump_json()))
    agent = Agent(name="geo", instructions="Answer with data.", output_type=City,
                  model=OpenAIResponsesModel(model=model, openai_client=stack.openai(await stack.new_key())))
    result = await Runner.run(agent, "Biggest French city?")
    assert result.final_output == PARIS
    assert stack.upstream.scripts[model].requests[0]["response_format"]["type"] == "json_schema"


async def test_json_mode_cache_and_safety_fields_are_forwarded_and_echoed(stack: Stack) -> None:
    model = await stack.model(Reply(text=json.dumps({"ok": True})))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="json please", text={"format": {"type": "json_object"},
                        "verbosity": "low"}, prompt_cache_key="tenant-7", prompt_cache_retention="24h",
                        safety_identifier="user-42")
    sent = stack.upstream.scripts[model].requests[0]
    assert sent["response_format"] == {"type": "json_object"} and sent["verbosity"] == "low"
    assert (sent["prompt_cache_key"], sent["prompt_cache_retention"], sent["safety_identifier"]) == (
        "tenant-7", "24h", "user-42")
    assert (body["prompt_cache_key"], body["prompt_cache_retention"], body["safety_identifier"]) == (
        "tenant-7", "24h", "user-42")
    assert body["text"]["format"] == {"type": "json_object"}


async def test_bad_text_format_is_a_400_naming_it_and_writes_nothing(stack: Stack) -> None:
    model = await stack.model(Reply(text="unused"))
    key = await stack.new_key()
    before = await stack.count_rows()
    for text, param in (({"format": {"type": "xml"}}, "text.format"),
                        ({"format": {"type": "json_schema", "name": "x", "schema": {"type": "array"}}},
                         "text.format.schema")):
        r = await stack.call("POST", "/v1/responses", key, {"model": model, "input": "x", "text": text})
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    assert await stack.count_rows() == before and stack.upstream.scripts[model].requests == []


async def test_input_items_give_assistant_text_as_output_text(stack: Stack) -> None:
    model = await stack.model(Reply(text="sure"))
    client = stack.openai(await stack.new_key())
    created = await client.responses.create(model=model, input=[
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello, how can I help?"},
        {"role": "user", "content": "tell me"}])
    page = await client.responses.input_items.list(created.id, order="asc")  # strict validation of every item
    assistant = page.data[1]
    assert assistant.type == "message" and assistant.role == "assistant"
    assert assistant.content[0].type == "output_text"  # type: ignore[union-attr]


async def test_input_items_page_holding_every_item_type(stack: Stack) -> None:
    """One input of every item type the API takes, listed back through the strict `openai` client (and each item
    checked against the spec's model by the shared helper), in order and in its own shape."""
    model = await stack.model(Reply(text="the summary"), Reply(text="done"))
    key = await stack.new_key()
    client = stack.openai(key)
    compacted = await client.responses.compact(model=model, input="a long earlier conversation")
    history: list[Any] = [
        {"role": "system", "content": "be terse"},
        {"role": "developer", "content": [{"type": "input_text", "text": "house rules"}]},
        compacted.output[0].model_dump(exclude_none=True),
        {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]},
        {"type": "reasoning", "id": "rs_in", "summary": [], "encrypted_content": "opaque+/="},
        {"role": "assistant", "content": "checking", "phase": "commentary"},
        {"type": "function_call", "call_id": "call_a", "name": "client_fn", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "42"},
        {"type": "mcp_call", "id": "mcp_in", "server_label": "agentrunner", "name": "lookup", "arguments": "{}",
         "output": "7", "status": "completed"},
        {"role": "user", "content": "and now?"},
    ]
    created = await client.responses.create(model=model, input=history)
    listed = [i async for i in client.responses.input_items.list(created.id, order="asc", limit=3)]
    assert [(i.type, getattr(i, "role", None)) for i in listed] == [
        ("message", "system"), ("message", "developer"), ("compaction", None), ("message", "user"),
        ("reasoning", None), ("message", "assistant"), ("function_call", None), ("function_call_output", None),
        ("mcp_call", None), ("message", "user")]
    raw = (await stack.call("GET", f"/v1/responses/{created.id}/input_items?order=asc&limit=100", key)).json()
    for item in raw["data"]:
        assert_wire(item, "item")
    assert raw["data"][4]["encrypted_content"] == "opaque+/="
    assert raw["data"][3]["content"][1]["detail"] == "auto"
    assert len({i["id"] for i in raw["data"]}) == 10


async def test_assistant_phase_is_echoed_and_files_reach_the_upstream(stack: Stack) -> None:
    model = await stack.model(Reply(text="read it"))
    client = stack.openai(await stack.new_key())
    pdf = {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQ="}
    created = await client.responses.create(model=model, input=[  # type: ignore[list-item]
        {"role": "assistant", "content": "Let me check.", "phase": "commentary"},
        {"role": "user", "content": [{"type": "input_text", "text": "Summarize this"}, pdf]}])
    page = await client.responses.input_items.list(created.id, order="asc")  # strict validation
    assert page.data[0].type == "message" and page.data[0].phase == "commentary"  # type: ignore[union-attr]
    sent = stack.upstream.scripts[model].requests[0]["messages"][1]["content"]
    assert sent[1] == {"type": "file", "file": {"file_data": pdf["file_data"], "filename": "a.pdf"}}


async def test_logprobs_when_included(stack: Stack) -> None:
    model = await stack.model(Reply(text="Two words"))
    client = stack.openai(await stack.new_key())
    r = await client.responses.create(model=model, input="hi", include=["message.output_text.logprobs"],
                                      top_logprobs=2)
    sent = stack.upstream.scripts[model].requests[0]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2 and r.top_logprobs == 2
    part = r.output[0].content[0]  # type: ignore[union-attr]
    assert part.type == "output_text" and [lp.token for lp in part.logprobs or []] == ["Two ", "words"]
    assert all(len(lp.top_logprobs) == 2 for lp in part.logprobs or [])


async def test_logprobs_when_included_streamed(stack: Stack) -> None:
    """Each output_text delta carries its tokens' logprobs; the done events and the item carry them all."""
    model = await stack.model(Reply(text="Three small words"))
    client = stack.openai(await stack.new_key())
    deltas, done = [], None
    async with client.responses.stream(model=model, input="hi", include=["message.output_text.logprobs"],
                                       top_logprobs=1) as stream:
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event)
            elif event.type == "response.output_text.done":
                done = event
        final = await stream.get_final_response()
    assert "".join(d.delta for d in deltas) == "Three small words"
    for d in deltas:  # coalescing may join words: a delta's logprobs are exactly its tokens
        assert "".join(lp.token for lp in d.logprobs) == d.delta
        assert all(len(lp.top_logprobs or []) == 1 for lp in d.logprobs)
    assert done is not None and [lp.token for lp in done.logprobs or []] == ["Three ", "small ", "words"]
    part = final.output[0].content[0]  # type: ignore[union-attr]
    assert part.type == "output_text" and [lp.token for lp in part.logprobs or []] == ["Three ", "small ", "words"]


async def test_cache_control_is_checked_before_anything_is_stored_and_counted(stack: Stack) -> None:
    model = await stack.model(Reply(text="cached"))
    key = await stack.new_key()
    marked = {"type": "input_text", "text": "a long shared prefix", "cache_control": {"type": "ephemeral"}}
    ok = await create(stack, key, model=model, input=[{"role": "user", "content": [marked]}])
    assert ok["status"] == "completed"
    assert stack.upstream.scripts[model].requests[0]["messages"] == [{"role": "user",
                                                                      "content": "a long shared prefix"}]
    before = await stack.count_rows()
    bad = {**marked, "cache_control": {"type": "ephemeral", "ttl": "24h"}}
    r = await stack.call("POST", "/v1/responses", key, {"model": model, "input": [{"role": "user", "content": [bad]}]})
    error = r.json()["error"]
    assert r.status_code == 400 and error["code"] == "invalid_cache_control"
    assert error["param"] == "input[0].content[0].cache_control" and "5m, 1h" in error["message"]
    assert await stack.count_rows() == before and len(stack.upstream.scripts[model].requests) == 1
    metrics = (await stack.http.get(stack.url + "/metrics")).text
    assert 'agentrunner_cache_control_rejections_total{reason="disabled_ttl"} 1.0' in metrics


async def test_cache_control_reaches_an_upstream_that_takes_it(stack: Stack) -> None:
    upstream_model = stack.upstream.script(Reply(text="cached"))
    alias = f"caching-{upstream_model}"
    await stack.admin("POST", "/admin/models", {"alias": alias, "base_url": stack.upstream.base_url + "/v1",
                                                "upstream_model": upstream_model, "cache_control": True})
    marker = {"type": "ephemeral", "ttl": "1h"}
    await create(stack, await stack.new_key(), model=alias, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "a long shared prefix", "cache_control": marker},
        {"type": "input_text", "text": "the question"}]}])
    assert stack.upstream.scripts[upstream_model].requests[0]["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "a long shared prefix", "cache_control": marker},
        {"type": "text", "text": "the question"}]}]
