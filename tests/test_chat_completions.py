"""/v1/chat/completions passthrough: same keys and model routing, JSON and streaming, upstream errors kept."""

import openai
import pytest

from tests.conftest import Stack
from tests.scripted_upstream import Reply


async def test_passthrough_json_and_stream(stack: Stack) -> None:
    model = await stack.model(Reply(text="Hello from upstream", usage=(4, 3)))
    client = stack.openai(await stack.new_key())
    done = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert done.choices[0].message.content == "Hello from upstream" and done.usage is not None
    assert done.usage.total_tokens == 7
    sent = stack.upstream.scripts[model].requests[0]
    assert sent["model"] == model and sent["messages"] == [{"role": "user", "content": "hi"}]

    stream = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                                  stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from upstream"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


async def test_builtin_scripted_model_and_tools(stack: Stack) -> None:
    client = stack.openai(await stack.new_key())
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}}]
    called = await client.chat.completions.create(model="agentrunner-scripted", tools=tools,  # type: ignore[arg-type]
                                                  messages=[{"role": "user", "content": "cats"}])
    call = called.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup" and call.function.arguments == '{"q": "cats"}'  # type: ignore[union-attr]
    stream = await client.chat.completions.create(model="agentrunner-scripted", stream=True,
                                                  messages=[{"role": "user", "content": "hello"}])
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "hello" in text


async def test_errors_auth_and_unknown_model(stack: Stack) -> None:
    model = await stack.model(Reply(status=400, error_body={"error": {
        "message": "bad messages", "type": "invalid_request_error", "param": "messages", "code": "bad"}}))
    client = stack.openai(await stack.new_key())
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert err.value.body == {"message": "bad messages", "type": "invalid_request_error", "param": "messages",
                              "code": "bad"}
    with pytest.raises(openai.NotFoundError) as unknown:  # as OpenAI answers an unknown model
        await client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.param == "model"
    with pytest.raises(openai.AuthenticationError):
        await stack.openai("sk-wrong").chat.completions.create(model=model, messages=[])
