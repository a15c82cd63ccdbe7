"""Responses stream events (WIRE.md) and what a retried attempt may still show the client.

Retry semantics for streamed text: a step's events are durable, so a retried model call knows the text the
client already received. While the new attempt's text agrees with it, nothing is re-sent; once it runs past,
only the new part is sent. If it disagrees, what was sent cannot be taken back: that message item is closed
as `incomplete` with exactly the text the client saw, and the new attempt's answer streams as a new item.
"""

from dataclasses import dataclass
from typing import Any

from core.status import ResponseStatus

# The Responses stream has no "cancelled" event, and strict clients reject unknown event types; a cancelled
# response therefore ends with response.failed whose response.status is "cancelled".
TERMINAL_EVENT = {ResponseStatus.COMPLETED: "response.completed", ResponseStatus.INCOMPLETE: "response.incomplete",
                  ResponseStatus.FAILED: "response.failed", ResponseStatus.CANCELLED: "response.failed"}
TERMINAL_EVENT_TYPES = frozenset(TERMINAL_EVENT.values())


def lifecycle(type_: str, response: dict[str, Any]) -> dict[str, Any]:
    """response.created / in_progress / completed / failed / incomplete."""
    return {"type": type_, "response": response}


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    """An assistant message item with one output_text part."""
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def item_added(index: int, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response.output_item.added", "output_index": index, "item": item}


def item_done(index: int, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response.output_item.done", "output_index": index, "item": item}


def message_opened(item_id: str, index: int) -> list[dict[str, Any]]:
    """output_item.added (empty, in progress) then content_part.added."""
    return [item_added(index, {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress",
                               "content": []}),
            {"type": "response.content_part.added", "item_id": item_id, "output_index": index, "content_index": 0,
             "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}]


def text_delta(item_id: str, index: int, delta: str) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "item_id": item_id, "output_index": index, "content_index": 0,
            "delta": delta, "logprobs": []}


def message_closed(item_id: str, index: int, text: str, status: str,
                   item: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """output_text.done, content_part.done and output_item.done for a streamed message (`item`: the finished item,
    when it is more than its text)."""
    item = item or message_item(item_id, text, status)
    part = item["content"][0] if len(item["content"]) == 1 else message_item(item_id, text, status)["content"][0]
    return [{"type": "response.output_text.done", "item_id": item_id, "output_index": index, "content_index": 0,
             "text": text, "logprobs": part.get("logprobs") or []},
            {"type": "response.content_part.done", "item_id": item_id, "output_index": index, "content_index": 0,
             "part": part},
            item_done(index, item)]


def function_call_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole function call: added with empty arguments, one arguments delta, done, item done."""
    return [item_added(index, {**item, "arguments": "", "status": "in_progress"}),
            {"type": "response.function_call_arguments.delta", "item_id": item["id"], "output_index": index,
             "delta": item["arguments"]},
            {"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": index,
             "name": item["name"], "arguments": item["arguments"]},
            item_done(index, item)]


def compaction_item(compaction_id: str) -> dict[str, Any]:
    """A compaction item: its opaque `encrypted_content` is the id of the stored summary (owner-scoped)."""
    return {"id": compaction_id, "type": "compaction", "encrypted_content": compaction_id}


def reasoning_item(item_id: str, text: str, summary: str | None) -> dict[str, Any]:
    """A reasoning output item: the model's reasoning text and, when one was asked for, its summary."""
    return {"id": item_id, "type": "reasoning",
            "summary": [{"type": "summary_text", "text": summary}] if summary else [],
            "content": [{"type": "reasoning_text", "text": text}]}


def reasoning_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole reasoning item: added empty, its text parts (one delta, done), each summary part, then item done.

    An upstream's encrypted reasoning may have no readable text at all: then only added and done.
    """
    item_id = item["id"]
    events = [item_added(index, {**item, "summary": [], "content": []})]
    for i, part in enumerate(item.get("content") or []):
        where = {"item_id": item_id, "output_index": index, "content_index": i}
        events += [{"type": "response.reasoning_text.delta", **where, "delta": part["text"]},
                   {"type": "response.reasoning_text.done", **where, "text": part["text"]}]
    for i, part in enumerate(item["summary"]):
        where = {"item_id": item_id, "output_index": index, "summary_index": i}
        events += [{"type": "response.reasoning_summary_part.added", **where, "part": {**part, "text": ""}},
                   {"type": "response.reasoning_summary_text.delta", **where, "delta": part["text"]},
                   {"type": "response.reasoning_summary_text.done", **where, "text": part["text"]},
                   {"type": "response.reasoning_summary_part.done", **where, "part": part}]
    return [*events, item_done(index, item)]


def call_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A client-side call is whole at once; a server-side (mcp_call) one is only added: its tool's step ends it."""
    if item["type"] == "mcp_call":
        return [item_added(index, item)]
    return function_call_events(index, item)


def item_events(index: int, item: dict[str, Any], *, pending_call: bool = False) -> list[dict[str, Any]]:
    """The events of an item an upstream gave whole: a call, reasoning, or anything else (added, then done)."""
    if pending_call:
        return call_events(index, item)
    if item.get("type") == "reasoning":
        return reasoning_events(index, item)
    return [item_added(index, item), item_done(index, item)]


@dataclass
class OpenText:
    """A message item a step started streaming: its id, index and the text the client has."""

    item_id: str
    output_index: int
    sent: str = ""


@dataclass(frozen=True)
class PriorStep:
    """What earlier attempts of a step already showed: items closed as incomplete, and an open item."""

    closed: int = 0  # closed message items and shown reasoning: both already stored for the step
    open: OpenText | None = None
    reasoning_shown: bool = False

    @classmethod
    def from_events(cls, events: list[dict[str, Any]]) -> "PriorStep":
        """Rebuild from a step's event log."""
        closed, current, reasoning = 0, None, False
        for e in events:
            if e["type"] == "response.output_item.added" and e["item"]["type"] == "message":
                current = OpenText(e["item"]["id"], e["output_index"])
            elif e["type"] == "response.output_text.delta" and current is not None:
                current.sent += e["delta"]
            elif e["type"] == "response.output_item.done" and e["item"]["type"] == "message":
                closed, current = closed + 1, None
            elif e["type"] == "response.output_item.done" and e["item"]["type"] == "reasoning":
                closed, reasoning = closed + 1, True
        return cls(closed, current, reasoning)


class TextReconciler:
    """Feeds a new attempt's deltas; says what to send, or that it disagrees with what was sent."""

    def __init__(self, prior: OpenText | None) -> None:
        self.sent = prior.sent if prior else ""
        self.attempt = ""
        self.caught_up = not self.sent

    def feed(self, delta: str) -> str | None:
        """The text to send for this delta ("" = nothing yet), or None when the attempt disagrees."""
        self.attempt += delta
        if self.caught_up:
            return delta
        if len(self.attempt) <= len(self.sent):
            return "" if self.sent.startswith(self.attempt) else None
        if not self.attempt.startswith(self.sent):
            return None
        self.caught_up = True
        return self.attempt[len(self.sent):]

    def agrees_at_end(self) -> bool:
        """Whether the finished attempt is consistent with what was sent (it reached at least as far)."""
        return self.caught_up or self.attempt == self.sent
