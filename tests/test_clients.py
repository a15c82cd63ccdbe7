"""The real client libraries against the real stack, by changing only base_url."""

from typing import Any

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool as lc_tool
from langchain_openai import ChatOpenAI
from sqlalchemy import text

from tests.conftest import Stack
from tests.helpers import eventually
from tests.scripted_upstream import Reply

set_tracing_disabled(True)  # the Agents SDK would otherwise export traces to the internet


async def test_openai_sdk_strict_full_surface(stack: Stack) -> None:
    model = await stack.model(Reply(text="Hi from upstream", usage=(7, 4)))
    client = stack.openai(await stack.new_key())
    created = await client.responses.create(
        model=model, instructions="Be brief", metadata={"a": "b"},
        input=[{"role": "user", "content": f"m{i}"} for i in range(3)])
    assert created.status == "completed" and created.output_text == "Hi from upstream"
    assert created.usage is not None and created.usage.total_tokens == 11
    got = await client.responses.retrieve(created.id)
    assert got.model_dump() == created.model_dump()

    page = await client.responses.input_items.list(created.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == ["m0", "m1"] and page.has_more  # type: ignore[union-attr]
    every = [i async for i in client.responses.input_items.list(created.id, limit=1, order="asc")]
    assert [i.content[0].text for i in every] == ["m0", "m1", "m2"]  # type: ignore[union-attr]

    deleted = await client.responses.delete(created.id)
    assert deleted is None
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(created.id)


async def test_openai_sdk_background_poll_and_cancel(stack: Stack) -> None:
    slow = await stack.model(Reply(text="slow one", delay=60))
    quick = await stack.model(Reply(text="quick one", delay=0.3))
    client = stack.openai(await stack.new_key())

    bg = await client.responses.create(model=quick, input="hi", background=True)
    assert bg.status in ("queued", "in_progress")

    async def finished() -> Any:
        r = await client.responses.retrieve(bg.id)
        return r if r.status == "completed" else None

    assert (await eventually(finished, what="background completion")).output_text == "quick one"

    running = await client.responses.create(model=slow, input="hi", background=True)
    cancelled = await client.responses.cancel(running.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        await client.responses.cancel(bg.id)


async def test_openai_sdk_errors_are_typed(stack: Stack) -> None:
    client = stack.openai(await stack.new_key())
    with pytest.raises(openai.NotFoundError) as unknown:  # as OpenAI answers an unknown model
        await client.responses.create(model="no-such-model", input="hi")
    assert unknown.value.param == "model" and unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        await client.responses.create(model="agentrunner-scripted", input="hi", temperature=7)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.AuthenticationError):
        await stack.openai("sk-wrong").responses.create(model="agentrunner-scripted", input="hi")


@function_tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


@pytest.mark.parametrize("auto_previous", [False, True], ids=["full-history", "auto-previous-response-id"])
async def test_agents_sdk_runner_with_client_side_tool(stack: Stack, auto_previous: bool) -> None:
    model = await stack.model(Reply(tool_calls=[("get_weather", {"city": "Paris"})]), Reply(text="It is sunny."))
    client = stack.openai(await stack.new_key())
    agent = Agent(name="weather", instructions="Use tools.", tools=[get_weather],
                  model=OpenAIResponsesModel(model=model, openai_client=client))
    result = await Runner.run(agent, "Weather in Paris?", auto_previous_response_id=auto_previous)
    assert result.final_output == "It is sunny."
    second = stack.upstream.scripts[model].requests[1]["messages"]
    assert second[0] == {"role": "system", "content": "Use tools."}
    assert second[1] == {"role": "user", "content": "Weather in Paris?"}
    assert second[-1]["role"] == "tool" and second[-1]["content"] == "sunny in Paris"
    async with stack.sessions() as s:
        prev = (await s.execute(text("SELECT previous_response_id FROM responses WHERE model = :m "
                                     "ORDER BY created_at"), {"m": model})).scalars().all()
    assert prev[0] is None
    assert (prev[1] is not None) == auto_previous


async def test_langchain_bind_tools_round_trip(stack: Stack) -> None:
    model = await stack.model(Reply(tool_calls=[("get_weather", {"city": "Oslo"})]), Reply(text="Snow in Oslo."))
    key = await stack.new_key()

    @lc_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"snow in {city}"

    llm = ChatOpenAI(model=model, base_url=stack.url + "/v1", api_key=key, use_responses_api=True,  # type: ignore[arg-type]
                     max_retries=0).bind_tools([get_weather])
    question = HumanMessage("Weather in Oslo?")
    ai = await llm.ainvoke([question])
    assert ai.tool_calls[0]["name"] == "get_weather" and ai.tool_calls[0]["args"] == {"city": "Oslo"}  # type: ignore[attr-defined]
    answer = get_weather.invoke(ai.tool_calls[0]["args"])  # type: ignore[attr-defined]
    final = await llm.ainvoke([question, ai, ToolMessage(answer, tool_call_id=ai.tool_calls[0]["id"])])  # type: ignore[attr-defined]
    assert final.text == "Snow in Oslo."
    assert stack.upstream.scripts[model].requests[1]["messages"][-1]["content"] == "snow in Oslo"
