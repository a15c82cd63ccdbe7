"""What one model step sends a chat-completions upstream, from the stored request."""

from typing import Any

import pytest

from activities.payloads import build_payload
from core.convert import COMPACTION_PREFIX, items_to_messages
from core.errors import InvalidRequest
from core.model_target import ModelTarget
from core.scripted import scripted_completion
from core.wire import normalize_input, parse_request

TARGET = ModelTarget("alias", "upstream-model", "http://127.0.0.1:9/v1", None)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "where": {
    "type": "object", "properties": {"lat": {"type": "number"}}}}, "required": ["city", "where"]}


def payload(**fields: Any) -> dict[str, Any]:
    """The payload for a request body as the API stores it (parsed, dumped as JSON)."""
    request = parse_request({"model": "alias", "input": "hi", **fields}).model_dump(mode="json", exclude={"input"})
    return build_payload(request, TARGET, [{"role": "user", "content": "hi"}], turn=1)


def test_plain_requests_send_no_optional_fields() -> None:
    assert payload() == {"model": "upstream-model", "messages": [{"role": "user", "content": "hi"}]}


def test_json_schema_becomes_response_format_with_strict() -> None:
    sent = payload(text={"format": {"type": "json_schema", "name": "Place", "schema": SCHEMA, "strict": True,
                                    "description": "a place"}, "verbosity": "high"},
                   reasoning={"effort": "minimal", "summary": "auto"})
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "Place", "schema": SCHEMA, "description": "a place", "strict": True}}
    assert sent["verbosity"] == "high" and sent["reasoning_effort"] == "minimal"


def test_json_object_text_and_cache_fields() -> None:
    sent = payload(text={"format": {"type": "json_object"}}, prompt_cache_key="k", prompt_cache_retention="in_memory",
                   safety_identifier="u1")
    assert sent["response_format"] == {"type": "json_object"}
    assert (sent["prompt_cache_key"], sent["prompt_cache_retention"], sent["safety_identifier"]) == (
        "k", "in_memory", "u1")
    assert "response_format" not in payload(text={"format": {"type": "text"}})


def test_scripted_model_fills_the_schema() -> None:
    sent = payload(text={"format": {"type": "json_schema", "name": "Place", "schema": SCHEMA}})
    answer = scripted_completion(sent["messages"], [], "call_1", response_format=sent["response_format"])
    assert answer["choices"][0]["message"]["content"] == '{"city": "hi", "where": {"lat": 1}}'


def test_a_compaction_item_stands_for_its_summary() -> None:
    items = normalize_input([{"type": "compaction", "encrypted_content": "cmp_1", "id": "cmp_1"},
                             {"role": "user", "content": "and now?"}])
    assert items[0] == {"id": "cmp_1", "type": "compaction", "encrypted_content": "cmp_1"}
    assert items_to_messages(None, items, {"cmp_1": "we agreed on Tuesday"}) == [
        {"role": "system", "content": COMPACTION_PREFIX + "we agreed on Tuesday"},
        {"role": "user", "content": "and now?"}]


def test_a_compaction_item_needs_its_reference() -> None:
    with pytest.raises(InvalidRequest) as info:
        normalize_input([{"type": "compaction"}])
    assert info.value.param == "input[0].encrypted_content" and info.value.code == "missing_required_parameter"


def test_assistant_phase_is_kept_and_checked() -> None:
    items = normalize_input([{"role": "assistant", "content": "thinking aloud", "phase": "commentary"}])
    assert items[0]["phase"] == "commentary"
    for bad in ({"role": "assistant", "content": "x", "phase": "later"}, {"role": "user", "content": "x",
                                                                            "phase": "final_answer"}):
        with pytest.raises(InvalidRequest) as info:
            normalize_input([bad])
        assert info.value.param == "input[0].phase"


def test_input_file_parts_go_to_chat_as_files() -> None:
    pdf = {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,AAAA"}
    items = normalize_input([{"role": "user", "content": [{"type": "input_text", "text": "read"}, pdf]}])
    assert items_to_messages(None, items) == [{"role": "user", "content": [
        {"type": "text", "text": "read"},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"}}]}]
    with pytest.raises(InvalidRequest) as info:
        normalize_input([{"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}])
    assert info.value.param == "input[0].content[0]" and info.value.code == "unsupported_value"


def test_responses_payload_is_stateless_and_passes_items_through() -> None:
    from activities.payloads import build_responses_payload
    from core.model_target import ModelTarget

    blob = "gAAAAB+/=="  # opaque, kept byte for byte
    part = {"type": "input_text", "text": "hi", "cache_control": {"type": "ephemeral"}}
    context = [
        {"id": "msg_u", "type": "message", "role": "user", "status": "completed", "content": [part]},
        {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": blob, "_turn": "0/1"},
        {"id": "rs_chat", "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "x"}]},
        {"id": "mcp_1", "type": "mcp_call", "server_label": "agentrunner", "name": "lookup", "arguments": "{}",
         "output": "42", "error": None, "status": "completed", "_turn": "0/1"},
        {"id": "msg_cut", "type": "message", "role": "assistant", "status": "incomplete", "content": []},
        {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}",
         "status": "completed"},
    ]
    request = {"tool_choice": "required", "_model_tools": [{"type": "function", "name": "f"}], "include": [],
               "reasoning": {"effort": "high"}, "instructions": "be brief", "metadata": {"a": "b"}}
    target = ModelTarget("alias", "gpt-x", "http://127.0.0.1:1/v1", None, api="responses")
    payload = build_responses_payload(request, target, context, {}, turn=2)
    assert payload["store"] is False and payload["include"] == ["reasoning.encrypted_content"]
    assert payload["model"] == "gpt-x" and payload["tool_choice"] == "auto"  # forced on the first turn only
    assert payload["instructions"] == "be brief" and payload["reasoning"] == {"effort": "high"}
    assert "metadata" not in payload  # ours, not the upstream's
    assert payload["input"] == [
        {"id": "msg_u", "type": "message", "role": "user", "status": "completed",
         "content": [{"type": "input_text", "text": "hi"}]},  # cache_control stripped for this alias
        {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": blob},
        {"type": "function_call", "call_id": "mcp_1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "mcp_1", "output": "42"},
        context[-1],
    ]
