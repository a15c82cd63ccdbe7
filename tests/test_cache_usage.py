"""Cached and cache-write input tokens reach usage on every path, summed over a response's steps."""

import json

from tests.conftest import Stack
from tests.helpers import create
from tests.scripted_upstream import Reply
from tests.streaming_helpers import stream_create


async def test_cache_tokens_are_summed_over_steps_blocking_and_streamed(stack: Stack) -> None:
    tool = await stack.tool()
    key = await stack.new_key()
    for stream in (False, True):
        model = await stack.model(Reply(tool_calls=[(tool, {"q": "x"})], cache=(4, 6)), Reply(text="ok", cache=(9, 1)))
        fields = {"model": model, "input": "go", "tools": [{"type": "function", "name": tool}]}
        body = (await stream_create(stack, key, **fields))[-1]["response"] if stream else await create(
            stack, key, **fields)
        details = body["usage"]["input_tokens_details"]
        assert details == {"cached_tokens": 13, "cache_write_tokens": 7}, (stream, details)
        again = (await stack.call("GET", f"/v1/responses/{body['id']}", key)).json()
        assert again["usage"] == body["usage"]


async def test_chat_passthrough_streams_always_carry_usage(stack: Stack) -> None:
    model = await stack.model(Reply(text="hi there", cache=(3, 2)))
    key = await stack.new_key()
    async with stack.http.stream("POST", stack.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                 json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                                       "stream": True}) as r:
        chunks = [json.loads(line[5:]) async for line in r.aiter_lines()
                  if line.startswith("data:") and line.strip() != "data: [DONE]"]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage and usage[-1]["prompt_tokens_details"]["cached_tokens"] == 3
    assert stack.upstream.scripts[model].requests[0]["stream_options"] == {"include_usage": True}
