"""Reasoning from chat upstreams (reasoning_content / reasoning) as reasoning items, blocking and streamed."""

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, set_tracing_disabled
from openai.types.shared import Reasoning

from tests.conftest import Stack
from tests.helpers import NODE_DIR, create, node_ready, text_of
from tests.scripted_upstream import Reply
from tests.streaming_helpers import assert_well_formed, replay, stream_create

set_tracing_disabled(True)  # the Agents SDK would otherwise export traces to the internet

THOUGHT = "15 times 37: 15 times 30 is 450, 15 times 7 is 105, together 555."
ASKED = {"effort": "low", "summary": "auto"}


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_blocking_reasoning_item_with_summary_and_tokens(stack: Stack, field: str) -> None:
    model = await stack.model(Reply(text="555", reasoning=THOUGHT, reasoning_field=field))
    client = stack.openai(await stack.new_key())
    r = await client.responses.create(model=model, input="What is 15 * 37?", reasoning=ASKED)  # type: ignore[arg-type]
    assert [i.type for i in r.output] == ["reasoning", "message"] and r.output_text == "555"
    reasoning = r.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == THOUGHT and reasoning.summary[0].text == THOUGHT
    assert r.usage is not None and r.usage.output_tokens_details.reasoning_tokens == len(THOUGHT.split())
    assert stack.upstream.scripts[model].requests[0]["reasoning_effort"] == "low"


async def test_no_summary_unless_asked(stack: Stack) -> None:
    model = await stack.model(Reply(text="555", reasoning=THOUGHT))
    body = await create(stack, await stack.new_key(), model=model, input="15 * 37?")
    assert body["output"][0]["type"] == "reasoning" and body["output"][0]["summary"] == []


async def test_streamed_reasoning_events_then_answer_and_replay(stack: Stack) -> None:
    model = await stack.model(Reply(text="It is 555.", reasoning=THOUGHT))
    key = await stack.new_key()
    events = await stream_create(stack, key, model=model, input="15 * 37?", reasoning=ASKED)
    assert_well_formed(events)
    types = [e["type"] for e in events]
    first_text = types.index("response.output_text.delta")
    assert types.index("response.reasoning_text.delta") < first_text
    assert types.index("response.reasoning_summary_text.done") < first_text
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == ["reasoning", "message"]
    final = events[-1]["response"]
    assert final["output"] == done
    assert (await stack.call("GET", f"/v1/responses/{final['id']}", key)).json()["output"] == done
    assert await replay(stack, key, final["id"]) == events


async def test_openai_stream_helper_reads_reasoning(stack: Stack) -> None:
    model = await stack.model(Reply(text="It is 555.", reasoning=THOUGHT))
    client = stack.openai(await stack.new_key())
    summary: list[str] = []
    async with client.responses.stream(model=model, input="15 * 37?", reasoning=ASKED) as s:  # type: ignore[arg-type]
        async for event in s:
            if event.type == "response.reasoning_summary_text.delta":
                summary.append(event.delta)
        final = await s.get_final_response()
    assert "".join(summary) == THOUGHT and final.output_text == "It is 555."


async def test_retried_stream_shows_reasoning_once(stack: Stack) -> None:
    long = "one two three four five six seven eight nine ten"
    model = await stack.model(Reply(text=long, reasoning=THOUGHT, drop_after=4), Reply(text=long, reasoning="other"))
    key = await stack.new_key()
    events = await stream_create(stack, key, model=model, input="count", reasoning=ASKED)
    assert_well_formed(events)
    reasoning_items = [e for e in events if e["type"] == "response.output_item.added"
                       and e["item"]["type"] == "reasoning"]
    assert len(reasoning_items) == 1 and len(stack.upstream.scripts[model].requests) == 2
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["content"][0]["text"] == THOUGHT  # what was shown stays
    assert text_of(final) == long


async def test_reasoning_items_sent_back_are_accepted(stack: Stack) -> None:
    model = await stack.model(Reply(text="555", reasoning=THOUGHT), Reply(text="yes"))
    client = stack.openai(await stack.new_key())
    first = await client.responses.create(model=model, input="15 * 37?", reasoning=ASKED)  # type: ignore[arg-type]
    history: list[Any] = [{"role": "user", "content": "15 * 37?"},
                          *[i.model_dump(exclude_none=True) for i in first.output],
                          {"role": "user", "content": "sure?"}]
    second = await client.responses.create(model=model, input=history)
    assert second.output_text == "yes"
    sent = stack.upstream.scripts[model].requests[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]  # the reasoning is kept, not re-sent
    items = await client.responses.input_items.list(second.id, order="asc")  # strict validation
    assert [i.type for i in items.data] == ["message", "reasoning", "message", "message"]


async def _reasoning_alias(stack: Stack, reply: Reply) -> str:
    """A model alias named like a reasoning model (clients send reasoning options only to those)."""
    upstream_name = stack.upstream.script(reply)
    alias = f"gpt-5-{upstream_name}"
    await stack.admin("POST", "/admin/models", {"alias": alias, "base_url": stack.upstream.base_url + "/v1",
                                                "upstream_model": upstream_name})
    return alias


async def test_agents_sdk_streams_reasoning(stack: Stack) -> None:
    alias = await _reasoning_alias(stack, Reply(text="It is 555.", reasoning=THOUGHT))
    agent = Agent(name="math", instructions="Compute.", model=OpenAIResponsesModel(
        model=alias, openai_client=stack.openai(await stack.new_key())),
        model_settings=ModelSettings(reasoning=Reasoning(effort="low", summary="auto")))
    run = Runner.run_streamed(agent, "15 * 37?")
    summary = [e.data.delta async for e in run.stream_events()  # type: ignore[union-attr]
               if e.type == "raw_response_event" and e.data.type == "response.reasoning_summary_text.delta"]
    assert "".join(summary) == THOUGHT and run.final_output == "It is 555."
    assert [i.type for i in run.new_items] == ["reasoning_item", "message_output_item"]


@pytest.mark.skipif(not node_ready() and not os.environ.get("CI"),
                    reason="node or tests/node/node_modules missing (make test installs them)")
async def test_vercel_ai_sdk_streams_reasoning(stack: Stack, tmp_path: Path) -> None:
    alias = await _reasoning_alias(stack, Reply(text="It is 555.", reasoning=THOUGHT))
    out = tmp_path / "ai-sdk-reasoning.json"
    # Not subprocess.run: the API under test is served by this very event loop.
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "stream_reasoning.mjs"), stack.url + "/v1", await stack.new_key(), alias, str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode == 0, stdout.decode()
    assert json.loads(out.read_text()) == {"reasoning": THOUGHT, "text": "It is 555."}
