"""A response as clients see it: the Response object, and status moves with the stream events they imply.

The one place both the API (cancel, sweep, retrieve) and the activities (start, finalize) go through, so a
streamed response gets its lifecycle events whoever moves it, in the same transaction as the move.
"""

from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.emit import response as wire_response
from core.mcp import without_credentials
from core.metrics import Metrics
from core.status import TERMINAL_STATUSES, ResponseStatus
from core.stream_events import TERMINAL_EVENT, lifecycle
from core.tiers import effective_tier
from core.usage import Usage
from db import conversations
from db import responses as db
from db.events import ENDED_CHANNEL, append_events, notify
from db.tables import Response


async def move_status(session: AsyncSession, response_id: str, status: ResponseStatus, *,
                      only_from: Collection[ResponseStatus], error: dict[str, Any] | None = None,
                      incomplete_reason: str | None = None, commit: bool = True) -> Response | None:
    """Move a response to `status` if it is in one of `only_from`; the moved row, None when it did not move.

    A response in a conversation that took its turn appends its items to it in the same transaction.

    A streamed response gets created + in_progress events when it starts and its terminal event when it ends.
    With commit=False the change rides on the caller's transaction.
    """
    row = await db.set_status(session, response_id, status, only_from=only_from, error=error,
                              incomplete_reason=incomplete_reason)
    if row is not None and status == ResponseStatus.CANCELLED:
        await db.cancel_running_steps(session, response_id)
    if row is not None and status in TERMINAL_STATUSES:
        await notify(session, ENDED_CHANNEL, response_id)  # a blocking request answers, a local step stops, at once
        scrubbed = without_credentials(row.request)
        if scrubbed is not None:  # MCP credentials a request gave are needed while it runs, not after
            await db.set_request(session, response_id, scrubbed)
            row.request = scrubbed
    if row is not None and row.conversation_id and status in TURN_TAKEN:
        await conversations.append_items(session, row.conversation_id, await db.own_items(session, response_id),
                                         response_id)
    if row is not None and row.request.get("stream"):
        rendered = render_response(row, await db.output_items(session, response_id))
        if status == ResponseStatus.IN_PROGRESS:
            events = [lifecycle("response.created", rendered), lifecycle("response.in_progress", rendered)]
        else:
            events = [lifecycle(TERMINAL_EVENT[status], rendered)]
        await append_events(session, response_id, events)
    if commit:
        await session.commit()
    return row


# A response that ended with one of these took its turn: its input and output join its conversation, in order, in
# the transaction of the status move. A failed or cancelled one adds nothing; its client sends the turn again.
TURN_TAKEN = frozenset({ResponseStatus.COMPLETED, ResponseStatus.INCOMPLETE})


async def rendered(session: AsyncSession, row: Response) -> dict[str, Any]:
    """The Response object of a stored row, with its output items."""
    return render_response(row, await db.output_items(session, row.id))


def _echo_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool["type"] == "mcp":  # credentials are never echoed
        echoed = {k: v for k, v in tool.items() if k != "authorization"}
        return echoed | ({"headers": None} if "headers" in tool else {})
    if tool["type"] != "function":
        return tool
    return {"type": "function", "name": tool["name"], "description": tool.get("description"),
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
            "strict": bool(tool.get("strict", False))}


def render_response(row: Response, output: list[dict[str, Any]]) -> dict[str, Any]:
    """The full Response object (built as the spec's model), with effective values instead of nulls where clients
    expect them."""
    req = row.request
    error = None
    if row.error:
        error = {"code": _response_error_code(row.error), "message": row.error.get("message", "")}
    return wire_response({
        "id": row.id,
        "object": "response",
        "created_at": int(row.created_at.timestamp()),
        "completed_at": int(row.completed_at.timestamp()) if row.completed_at else None,
        "status": row.status,
        "background": bool(req.get("background", False)),
        "error": error,
        "incomplete_details": {"reason": row.incomplete_reason} if row.status == ResponseStatus.INCOMPLETE else None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "max_tool_calls": req.get("max_tool_calls"),
        "model": row.model,
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": row.previous_response_id,
        "reasoning": req.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": effective_tier(req.get("service_tier")),
        "store": req.get("store", True),
        "temperature": req["temperature"] if req.get("temperature") is not None else 1.0,
        "top_p": req["top_p"] if req.get("top_p") is not None else 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "top_logprobs": req.get("top_logprobs") or 0,
        "text": req.get("text") or {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": [_echo_tool(t) for t in req.get("tools", [])],
        "truncation": req.get("truncation") or "disabled",
        "user": req.get("user"),
        "safety_identifier": req.get("safety_identifier"),
        "prompt_cache_key": req.get("prompt_cache_key"),
        "prompt_cache_retention": req.get("prompt_cache_retention"),
        "metadata": req.get("metadata") or {},
        "conversation": {"id": row.conversation_id} if row.conversation_id else None,
        "usage": Usage.model_validate(row).to_wire(),
    }, output)


def _response_error_code(error: dict[str, Any]) -> str:
    # Response.error.code is a closed set in the openai SDK; the upstream's own code stays in the
    # error envelope of the failed request.
    status = int(error.get("status", 500))
    if status == 429:
        return "rate_limit_exceeded"
    if 400 <= status < 500:
        return "invalid_prompt"
    return "server_error"


def observe_end(metrics: Metrics, row: Response, steps: int) -> None:
    """Record a response that just ended: its duration and how many steps it took."""
    if row.completed_at is not None:
        seconds = (row.completed_at - row.created_at).total_seconds()
        metrics.response_seconds.labels(row.model, row.status).observe(seconds)
    metrics.steps_per_response.labels(row.model).observe(steps)
