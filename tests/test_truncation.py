"""`truncation` against an alias's context window: "disabled" refuses what does not fit, "auto" drops the oldest."""

from tests.conftest import Stack
from tests.scripted_upstream import Reply, ToolBehaviour


async def _alias(stack: Stack, window: int, *replies: Reply) -> str:
    upstream_model = stack.upstream.script(*replies)
    alias = f"windowed-{upstream_model}"
    await stack.admin("POST", "/admin/models", {"alias": alias, "base_url": stack.upstream.base_url + "/v1",
                                                "upstream_model": upstream_model, "context_window": window})
    return alias


async def test_disabled_overflow_is_a_400_naming_input_and_writes_nothing(stack: Stack) -> None:
    alias = await _alias(stack, 100, Reply(text="unused"))
    key = await stack.new_key()
    before = await stack.count_rows()
    r = await stack.call("POST", "/v1/responses", key, {"model": alias, "input": "word " * 200})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "input" and r.json()["error"]["code"] == "context_length_exceeded"
    assert await stack.count_rows() == before
    fits = await stack.call("POST", "/v1/responses", key, {"model": alias, "input": "short"})
    assert fits.status_code == 200 and fits.json()["truncation"] == "disabled"


async def test_auto_drops_the_oldest_messages(stack: Stack) -> None:
    alias = await _alias(stack, 120, Reply(text="ok"))
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "pad " * 20}
               for i in range(8)]
    r = await stack.call("POST", "/v1/responses", await stack.new_key(), {
        "model": alias, "instructions": "Be brief.", "truncation": "auto", "input": history})
    assert r.status_code == 200 and r.json()["truncation"] == "auto"
    sent = stack.upstream.scripts[alias.removeprefix("windowed-")].requests[0]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert 1 < len(sent) < 9 and sent[-1]["content"] == history[-1]["content"]  # the newest stays


async def test_a_tool_result_that_overflows_fails_the_next_call_with_400(stack: Stack) -> None:
    tool = await stack.tool(ToolBehaviour(body="result " * 400))
    alias = await _alias(stack, 300, Reply(tool_calls=[(tool, {"q": "x"})]), Reply(text="unreachable"))
    r = await stack.call("POST", "/v1/responses", await stack.new_key(), {
        "model": alias, "input": "go", "tools": [{"type": "function", "name": tool}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text
    assert len(stack.upstream.scripts[alias.removeprefix("windowed-")].requests) == 1
