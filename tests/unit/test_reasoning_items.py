"""Reasoning from chat upstreams as Responses items and stream events, validated against the openai types."""

from typing import Any

from openai.types.responses import ResponseReasoningItem, ResponseStreamEvent
from pydantic import TypeAdapter

from core.convert import completion_to_items, items_to_messages, reasoning_summary
from core.stream_events import PriorStep, reasoning_events, reasoning_item

EVENT = TypeAdapter(ResponseStreamEvent)
THOUGHT = "First paragraph of thought.\n\nSecond paragraph."


def test_completion_with_reasoning_gives_the_item_first() -> None:
    for field in ("reasoning_content", "reasoning"):
        items = completion_to_items({"role": "assistant", "content": "42", field: THOUGHT}, summary_mode="auto")
        assert [i["type"] for i in items] == ["reasoning", "message"]
        parsed = ResponseReasoningItem.model_validate(items[0])
        assert parsed.content is not None and parsed.content[0].text == THOUGHT
        assert parsed.summary[0].text == THOUGHT


def test_summary_modes() -> None:
    assert reasoning_summary(THOUGHT, None) is None
    assert reasoning_summary(THOUGHT, "detailed") == THOUGHT
    assert reasoning_summary(THOUGHT, "concise") == "First paragraph of thought."
    assert reasoning_summary("x" * 400, "concise") == "x" * 299 + "…"


def test_reasoning_events_are_spec_events() -> None:
    item = reasoning_item("rs_1", THOUGHT, "short")
    events = reasoning_events(3, item)
    for seq, e in enumerate(events):
        EVENT.validate_python({**e, "sequence_number": seq})
    assert [e["type"] for e in events] == [
        "response.output_item.added", "response.reasoning_text.delta", "response.reasoning_text.done",
        "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done"]
    assert events[-1]["item"] == item and all(e["output_index"] == 3 for e in events)


def test_a_shown_reasoning_item_counts_as_stored_for_a_retry() -> None:
    shown: list[dict[str, Any]] = reasoning_events(0, reasoning_item("rs_1", THOUGHT, None))
    prior = PriorStep.from_events(shown)
    assert prior.reasoning_shown and prior.closed == 1 and prior.open is None


def test_reasoning_is_not_sent_back_to_chat_upstreams() -> None:
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
             reasoning_item("rs_1", THOUGHT, None)]
    assert items_to_messages(None, items) == [{"role": "user", "content": "q"}]
