"""Responses stream events (WIRE.md) and what a retried attempt may still show the client.

Retry semantics for streamed text: a step's events are durable, so a retried model call knows the text the
client already received. While the new attempt's text agrees with it, nothing is re-sent; once it runs past,
only the new part is sent. If it disagrees, what was sent cannot be taken back: that message item is closed
as `incomplete` with exactly the text the client saw, and the new attempt's answer streams as a new item.
"""

from dataclasses import dataclass
from typing import Any

from openai import BaseModel as WireModel
from openai.types import responses as ev
from openai.types.responses.response_output_item import McpApprovalRequest, McpCall, McpListTools

from core.emit import dump, event
from core.ids import new_id
from core.status import ResponseStatus

# The Responses stream has no "cancelled" event, and strict clients reject unknown event types; a cancelled
# response therefore ends with response.failed whose response.status is "cancelled".
TERMINAL_EVENT = {ResponseStatus.COMPLETED: "response.completed", ResponseStatus.INCOMPLETE: "response.incomplete",
                  ResponseStatus.FAILED: "response.failed", ResponseStatus.CANCELLED: "response.failed"}
TERMINAL_EVENT_TYPES = frozenset(TERMINAL_EVENT.values())


SERVER_LABEL = "agentrunner"  # the server_label of our server-side tool calls (`mcp_call` items)

_LIFECYCLE: dict[str, type[WireModel]] = {
    "response.created": ev.ResponseCreatedEvent, "response.in_progress": ev.ResponseInProgressEvent,
    "response.completed": ev.ResponseCompletedEvent, "response.failed": ev.ResponseFailedEvent,
    "response.incomplete": ev.ResponseIncompleteEvent}


def lifecycle(type_: str, response: dict[str, Any]) -> dict[str, Any]:
    """response.created / in_progress / completed / failed / incomplete."""
    return event(_LIFECYCLE[type_], type=type_, response=response)


def _text(text: str, logprobs: list[dict[str, Any]] | None = None) -> ev.ResponseOutputText:
    return ev.ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=logprobs or [])


def message_item(item_id: str, text: str, status: str, logprobs: list[dict[str, Any]] | None = None,
                 ) -> dict[str, Any]:
    """An assistant message item with one output_text part."""
    return dump(ev.ResponseOutputMessage(id=item_id, type="message", role="assistant", status=status,
                                         content=[_text(text, logprobs)]))


def item_added(index: int, item: dict[str, Any]) -> dict[str, Any]:
    return event(ev.ResponseOutputItemAddedEvent, type="response.output_item.added", output_index=index, item=item)


def item_done(index: int, item: dict[str, Any]) -> dict[str, Any]:
    return event(ev.ResponseOutputItemDoneEvent, type="response.output_item.done", output_index=index, item=item)


def message_opened(item_id: str, index: int) -> list[dict[str, Any]]:
    """output_item.added (empty, in progress) then content_part.added."""
    return [item_added(index, {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress",
                               "content": []}),
            event(ev.ResponseContentPartAddedEvent, type="response.content_part.added", item_id=item_id,
                  output_index=index, content_index=0, part=_text(""))]


def text_delta(item_id: str, index: int, delta: str, logprobs: list[dict[str, Any]] | None = None,
               ) -> dict[str, Any]:
    return event(ev.ResponseTextDeltaEvent, type="response.output_text.delta", item_id=item_id, output_index=index,
                 content_index=0, delta=delta, logprobs=logprobs or [])


def message_closed(item_id: str, index: int, text: str, status: str,
                   item: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """output_text.done, content_part.done and output_item.done for a streamed message (`item`: the finished item,
    when it is more than its text)."""
    item = item or message_item(item_id, text, status)
    part = item["content"][0] if len(item["content"]) == 1 else message_item(item_id, text, status)["content"][0]
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    return [event(ev.ResponseTextDoneEvent, type="response.output_text.done", **where, text=text,
                  logprobs=part.get("logprobs") or []),
            event(ev.ResponseContentPartDoneEvent, type="response.content_part.done", **where, part=part),
            item_done(index, item)]


def function_call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A call of a client-side function tool, for the client to run."""
    return dump(ev.ResponseFunctionToolCall(id=new_id("fc"), type="function_call", call_id=call_id, name=name,
                                            arguments=arguments, status="completed"))


def mcp_call_item(name: str, arguments: str, server_label: str = SERVER_LABEL) -> dict[str, Any]:
    """A call the server runs (of a registered tool, or of a remote MCP server's): in progress until its tool step
    completes it."""
    return dump(McpCall(id=new_id("mcp"), type="mcp_call", server_label=server_label, name=name,
                        arguments=arguments, output=None, error=None, status="in_progress"))


def mcp_approval_request_item(name: str, arguments: str, server_label: str) -> dict[str, Any]:
    """A call the model asked for that waits for the client's approval: the response ends with it."""
    return dump(McpApprovalRequest(id=new_id("mcpr"), type="mcp_approval_request", server_label=server_label,
                                   name=name, arguments=arguments))


def approved_call(call_id: str, request: dict[str, Any], approval_request_id: str) -> dict[str, Any] | None:
    """The `mcp_call` item of a call the client approved (from the request's `_approved`), in progress."""
    entry = next((c for c in request.get("_approved") or [] if c["approval_request_id"] == approval_request_id), None)
    if entry is None:
        return None
    return dump(McpCall(id=call_id, type="mcp_call", server_label=entry["server_label"], name=entry["name"],
                        arguments=entry["arguments"], approval_request_id=approval_request_id, output=None,
                        error=None, status="in_progress"))


def mcp_call_finished(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A server-side call's end: mcp_call.completed or .failed, then output_item.done."""
    where = {"item_id": item["id"], "output_index": index}
    if item["status"] == "completed":
        end = event(ev.ResponseMcpCallCompletedEvent, type="response.mcp_call.completed", **where)
    else:
        end = event(ev.ResponseMcpCallFailedEvent, type="response.mcp_call.failed", **where)
    return [end, item_done(index, item)]


def mcp_list_tools_item(server_label: str, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The tools a remote MCP server offers, listed once per response (later turns reuse the item)."""
    return dump(McpListTools(id=new_id("mcpl"), type="mcp_list_tools", server_label=server_label, tools=tools,
                             error=None))


def mcp_list_tools_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole listing: added (no tools yet), in_progress, completed, done."""
    where = {"item_id": item["id"], "output_index": index}
    return [item_added(index, {**item, "tools": []}),
            event(ev.ResponseMcpListToolsInProgressEvent, type="response.mcp_list_tools.in_progress", **where),
            event(ev.ResponseMcpListToolsCompletedEvent, type="response.mcp_list_tools.completed", **where),
            item_done(index, item)]


def tool_error(message: str) -> dict[str, Any]:
    """An `mcp_call` item's `error`: the spec's tool execution error carrying the message as text content."""
    return {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": message}]}


def mcp_call_done(call: dict[str, Any], output: str | None, error: dict[str, Any] | None) -> dict[str, Any]:
    """A server-side call completed in place with its tool's output, or failed with the tool's error."""
    return dump(McpCall.model_validate({**call, "output": output, "error": error,
                                           "status": "completed" if error is None else "failed"}))


def function_call_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole function call: added with empty arguments, one arguments delta, done, item done."""
    where = {"item_id": item["id"], "output_index": index}
    return [item_added(index, {**item, "arguments": "", "status": "in_progress"}),
            event(ev.ResponseFunctionCallArgumentsDeltaEvent, type="response.function_call_arguments.delta", **where,
                  delta=item["arguments"]),
            event(ev.ResponseFunctionCallArgumentsDoneEvent, type="response.function_call_arguments.done", **where,
                  name=item["name"], arguments=item["arguments"]),
            item_done(index, item)]


def compaction_item(compaction_id: str) -> dict[str, Any]:
    """A compaction item: its opaque `encrypted_content` is the id of the stored summary (owner-scoped)."""
    return dump(ev.ResponseCompactionItem(id=compaction_id, type="compaction", encrypted_content=compaction_id))


def reasoning_item(item_id: str, text: str, summary: str | None) -> dict[str, Any]:
    """A reasoning output item: the model's reasoning text and, when one was asked for, its summary."""
    return dump(ev.ResponseReasoningItem(
        id=item_id, type="reasoning",
        summary=[{"type": "summary_text", "text": summary}] if summary else [],
        content=[{"type": "reasoning_text", "text": text}]))


def reasoning_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole reasoning item: added empty, its text parts (one delta, done), each summary part, then item done.

    An upstream's encrypted reasoning may have no readable text at all: then only added and done.
    """
    item_id = item["id"]
    events = [item_added(index, {**item, "summary": [], "content": []})]
    for i, part in enumerate(item.get("content") or []):
        where = {"item_id": item_id, "output_index": index, "content_index": i}
        events += [event(ev.ResponseReasoningTextDeltaEvent, type="response.reasoning_text.delta", **where,
                         delta=part["text"]),
                   event(ev.ResponseReasoningTextDoneEvent, type="response.reasoning_text.done", **where,
                         text=part["text"])]
    for i, part in enumerate(item["summary"]):
        where = {"item_id": item_id, "output_index": index, "summary_index": i}
        events += [event(ev.ResponseReasoningSummaryPartAddedEvent, type="response.reasoning_summary_part.added",
                         **where, part={**part, "text": ""}),
                   event(ev.ResponseReasoningSummaryTextDeltaEvent, type="response.reasoning_summary_text.delta",
                         **where, delta=part["text"]),
                   event(ev.ResponseReasoningSummaryTextDoneEvent, type="response.reasoning_summary_text.done",
                         **where, text=part["text"]),
                   event(ev.ResponseReasoningSummaryPartDoneEvent, type="response.reasoning_summary_part.done",
                         **where, part=part)]
    return [*events, item_done(index, item)]


def call_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A client-side call is whole at once; a server-side (mcp_call) one is added with its arguments and in
    progress: its tool's step ends it (mcp_call_finished)."""
    if item["type"] == "mcp_approval_request":
        return [item_added(index, item), item_done(index, item)]
    if item["type"] != "mcp_call":
        return function_call_events(index, item)
    where = {"item_id": item["id"], "output_index": index}
    return [item_added(index, {**item, "arguments": ""}),
            event(ev.ResponseMcpCallArgumentsDeltaEvent, type="response.mcp_call_arguments.delta", **where,
                  delta=item["arguments"]),
            event(ev.ResponseMcpCallArgumentsDoneEvent, type="response.mcp_call_arguments.done", **where,
                  arguments=item["arguments"]),
            event(ev.ResponseMcpCallInProgressEvent, type="response.mcp_call.in_progress", **where)]


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
