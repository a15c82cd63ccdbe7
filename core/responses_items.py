"""Items for a native Responses upstream: a step's context as its `input`, its `output` as our items.

Items pass through as they are (a reasoning item keeps its `encrypted_content` byte for byte, a message its
annotations, a client-side function call its ids). Only what is ours is translated: a call the server ran
(`mcp_call`, of a registered tool or a remote MCP server's) is a function call plus its output to the upstream,
and a `compaction` is the summary we stored for it.
"""

from collections.abc import Mapping
from typing import Any

from core.convert import COMPACTION_PREFIX, error_text, refusals
from core.stream_events import mcp_approval_request_item, mcp_call_item

ENCRYPTED_REASONING = "reasoning.encrypted_content"  # the `include` value that makes reasoning portable


def _without_cache_control(item: dict[str, Any]) -> dict[str, Any]:
    parts = item.get("content")
    if not isinstance(parts, list) or not any(isinstance(p, dict) and "cache_control" in p for p in parts):
        return item
    return {**item, "content": [{k: v for k, v in p.items() if k != "cache_control"} for p in parts]}


def context_to_input(items: list[dict[str, Any]], summaries: dict[str, str] | None = None, *,
                     cache_control: bool = False) -> list[dict[str, Any]]:
    """The `input` a Responses upstream gets for this context (see the module docstring).

    Left out: what comes before the last compaction (it stands for all of it), assistant messages a retried stream
    closed as incomplete (their replacement follows), and reasoning without `encrypted_content`: it came from a chat
    upstream, and a Responses upstream given it back would look its id up and fail.
    """
    last_compaction = max((i for i, item in enumerate(items) if item.get("type") == "compaction"), default=0)
    items = items[last_compaction:]
    refused = refusals(items)
    out: list[dict[str, Any]] = []
    for item in items:
        item = {k: v for k, v in item.items() if not k.startswith("_")}  # our bookkeeping (`_turn`)
        kind = item.get("type")
        if kind == "message" and item.get("role") == "assistant" and item.get("status") == "incomplete":
            continue
        if kind == "reasoning" and not item.get("encrypted_content"):
            continue
        if kind == "mcp_call":  # ours or a remote server's we ran: the upstream was offered them as functions
            result = item.get("output") if item.get("error") is None else f"error: {error_text(item['error'])}"
            out += [{"type": "function_call", "call_id": item["id"], "name": item["name"],
                     "arguments": item["arguments"]},
                    {"type": "function_call_output", "call_id": item["id"], "output": result or ""}]
        elif kind == "compaction":
            summary = (summaries or {}).get(item["encrypted_content"], "")
            out.append({"type": "message", "role": "developer", "content": COMPACTION_PREFIX + summary})
        elif item.get("id") in refused:
            request, result = refused[item["id"]]
            out += [{"type": "function_call", "call_id": request["id"], "name": request["name"],
                     "arguments": request["arguments"]},
                    {"type": "function_call_output", "call_id": request["id"], "output": result}]
        elif kind in ("mcp_list_tools", "mcp_approval_request", "mcp_approval_response"):
            continue  # ours: a listing, or an approval whose outcome (the call, or its refusal) is given instead
        else:
            out.append(item if cache_control else _without_cache_control(item))
    return out


def output_to_items(output: list[dict[str, Any]], server_tools: Mapping[str, str],
                    ask: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Our output items for an upstream's `output`: unchanged, except that a function call of a tool the server runs
    (`server_tools`: its server label by name) becomes the `mcp_call` we run, or an `mcp_approval_request` when its
    name is one to `ask` the client about (as over chat completions)."""
    items = []
    for item in output:
        name = str(item.get("name"))
        if item.get("type") != "function_call" or name not in server_tools:
            items.append(item)
            continue
        args = item.get("arguments") or "{}"
        items.append(mcp_approval_request_item(name, args, server_tools[name]) if name in ask
                     else mcp_call_item(name, args, server_tools[name]))
    return items


def is_pending_call(item: dict[str, Any]) -> bool:
    """Whether an output item is a tool call the loop must act on: a client-side function call or a call waiting
    for approval (the response ends for the client to act) or a server-side call we have yet to run."""
    if item.get("type") in ("function_call", "mcp_approval_request"):
        return True
    return item.get("type") == "mcp_call" and item.get("status") == "in_progress"


def finish_reason(response: dict[str, Any]) -> str:
    """A Responses result's end as a chat finish_reason, which the loop decides on."""
    details = response.get("incomplete_details") or {}
    if response.get("status") == "incomplete" and details.get("reason") == "max_output_tokens":
        return "length"
    return "stop"
