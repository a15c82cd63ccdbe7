"""The shared wire assertion rejects what strict clients reject."""

import pytest
from pydantic import ValidationError

from core.stream_events import text_delta
from tests.wire import assert_wire


def test_events_are_checked_field_by_field() -> None:
    assert_wire({**text_delta("msg_1", 0, "hi"), "sequence_number": 3}, "event")
    with pytest.raises(ValidationError):
        assert_wire(text_delta("msg_1", 0, "hi"), "event")  # no sequence_number
    with pytest.raises(ValidationError):
        assert_wire({"type": "response.cancelled", "sequence_number": 0}, "event")  # not a spec event


def test_items_are_checked() -> None:
    assert_wire({"id": "fc_1", "type": "function_call", "call_id": "c", "name": "f", "arguments": "{}",
                 "status": "completed"}, "item")
    with pytest.raises(ValidationError):
        assert_wire({"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                     "content": [{"type": "output_text", "text": "no annotations"}]}, "item")
