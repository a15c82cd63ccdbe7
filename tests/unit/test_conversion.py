"""Input normalization, Responses→chat conversion and the built-in scripted model."""

import json

import pytest

from core.convert import completion_to_items, items_to_messages, tools_to_chat
from core.errors import InvalidRequest
from core.scripted import scripted_completion
from core.stream_events import tool_error
from core.wire import normalize_input, parse_request


def test_string_input_becomes_one_user_message() -> None:
    [item] = normalize_input("hello")
    assert item["type"] == "message" and item["role"] == "user" and item["id"].startswith("msg_")
    assert item["content"] == [{"type": "input_text", "text": "hello"}]


def test_all_message_shapes_are_accepted() -> None:
    items = normalize_input([
        {"role": "system", "content": "sys"},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "prev", "annotations": []}]},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "ok"}]},
    ])
    assert [i["type"] for i in items] == ["message"] * 3 + ["function_call", "function_call_output"]
    assert items[3]["id"].startswith("fc_") and items[4]["output"] == "ok"
    messages = items_to_messages("be nice", items)
    assert messages == [
        {"role": "system", "content": "be nice"},
        {"role": "system", "content": "sys"},
        {"role": "system", "content": "dev"},
        {"role": "assistant", "content": "prev"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]


def test_calls_of_one_turn_share_an_assistant_message() -> None:
    items = normalize_input([{"type": "function_call", "call_id": c, "name": "f", "arguments": "{}"} for c in "ab"])
    [msg] = items_to_messages(None, items)
    assert [c["id"] for c in msg["tool_calls"]] == ["a", "b"]


@pytest.mark.parametrize("body", [[], [{"role": "user"}], [{"type": "function_call_output"}], [{"foo": 1}]])
def test_bad_items_are_rejected(body: list[dict[str, object]]) -> None:
    with pytest.raises(InvalidRequest) as err:
        normalize_input(body)
    assert err.value.param is not None and err.value.param.startswith("input")


def test_parse_request_names_the_param() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_request({"model": "m", "input": "x", "top_p": 3})
    assert err.value.param == "top_p"
    assert parse_request({"model": "m", "input": "x", "stream_options": {}}).model == "m"


def test_completion_to_items() -> None:
    items = completion_to_items({"content": "hi", "tool_calls": [
        {"id": "call_9", "function": {"name": "f", "arguments": {"a": 1}}}]})
    assert items[0]["content"][0] == {"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}
    assert items[1]["call_id"] == "call_9" and json.loads(items[1]["arguments"]) == {"a": 1}


def test_scripted_model_calls_tool_then_answers() -> None:
    tools = tools_to_chat([{"name": "weather", "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}])
    first = scripted_completion([{"role": "user", "content": "Paris"}], tools, "call_x")["choices"][0]
    assert first["finish_reason"] == "tool_calls"
    call = first["message"]["tool_calls"][0]
    assert call["function"]["name"] == "weather" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    history = [{"role": "user", "content": "Paris"}, first["message"],
               {"role": "tool", "tool_call_id": "call_x", "content": "sunny"}]
    second = scripted_completion(history, tools, "call_y")["choices"][0]
    assert second["finish_reason"] == "stop" and "sunny" in second["message"]["content"]


def test_server_side_calls_of_different_turns_stay_apart() -> None:
    def mcp(i: int, turn: str) -> dict[str, object]:
        return {"id": f"mcp_{i}", "type": "mcp_call", "name": "t", "arguments": "{}", "output": f"r{i}",
                "error": None, "_turn": turn}

    messages = items_to_messages(None, [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "go"}]}, mcp(1, "0/1"), mcp(2, "0/1"), mcp(3, "0/4")])
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "assistant", "tool"]
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["mcp_1", "mcp_2"]
    assert messages[5] == {"role": "tool", "tool_call_id": "mcp_3", "content": "r3"}


def test_json_logs_carry_the_response_id() -> None:
    import json as _json
    import logging

    from core.logging import JsonFormatter

    record = logging.LogRecord("agentrunner", logging.INFO, __file__, 1, "tool %s failed", ("t",), None)
    record.temporal_activity = {"workflow_id": "resp_abc", "activity_type": "call_tool"}
    line = _json.loads(JsonFormatter().format(record))
    assert line["response_id"] == "resp_abc" and line["message"] == "tool t failed" and line["level"] == "INFO"
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    assert "response_id" not in _json.loads(JsonFormatter().format(plain))


def test_scripted_model_offers_no_tools_when_tool_choice_is_none() -> None:
    tools = tools_to_chat([{"name": "weather"}])
    answer = scripted_completion([{"role": "user", "content": "Paris"}], tools, "call_x", tool_choice="none")
    assert answer["choices"][0]["finish_reason"] == "stop" and "Paris" in answer["choices"][0]["message"]["content"]


def test_a_failed_server_call_reaches_the_model_as_its_error_message() -> None:
    for error in (tool_error("tool 'x' timed out"), "tool 'x' timed out"):  # spec object, or as older rows hold it
        call = {"id": "mcp_1", "type": "mcp_call", "server_label": "agentrunner", "name": "x", "arguments": "{}",
                "output": None, "error": error, "status": "failed"}
        assert items_to_messages(None, [call])[-1] == {
            "role": "tool", "tool_call_id": "mcp_1", "content": '{"error": "tool \'x\' timed out"}'}
