"""One assertion for everything the API emits: it validates against the spec's typed models (the openai package)."""

from typing import Any, Literal

from openai.types.responses import Response, ResponseItem, ResponseStreamEvent
from pydantic import TypeAdapter

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "response": TypeAdapter(Response), "event": TypeAdapter(ResponseStreamEvent), "item": TypeAdapter(ResponseItem)}


def assert_wire(obj: dict[str, Any], kind: Literal["response", "event", "item"]) -> None:
    """Fail unless `obj` is a valid Response object (its output items included), stream event or listed item."""
    _ADAPTERS[kind].validate_python(obj)
