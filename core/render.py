"""The Response object as clients read it (WIRE.md)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from db.tables import Response


def _echo_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool["type"] != "function":
        return tool
    return {"type": "function", "name": tool["name"], "description": tool.get("description"),
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
            "strict": bool(tool.get("strict", False))}


def render_response(row: "Response", output: list[dict[str, Any]]) -> dict[str, Any]:
    """The full Response object, with effective values instead of nulls where clients expect them."""
    req = row.request
    error = None
    if row.error:
        error = {"code": _response_error_code(row.error), "message": row.error.get("message", "")}
    return {
        "id": row.id,
        "object": "response",
        "created_at": int(row.created_at.timestamp()),
        "completed_at": int(row.completed_at.timestamp()) if row.completed_at else None,
        "status": row.status,
        "background": bool(req.get("background", False)),
        "error": error,
        "incomplete_details": {"reason": row.incomplete_reason} if row.status == "incomplete" else None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "max_tool_calls": req.get("max_tool_calls"),
        "model": row.model,
        "output": output,
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": row.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default" if req.get("service_tier") in (None, "auto") else req["service_tier"],
        "store": req.get("store", True),
        "temperature": req["temperature"] if req.get("temperature") is not None else 1.0,
        "top_p": req["top_p"] if req.get("top_p") is not None else 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "top_logprobs": 0,
        "text": req.get("text") or {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": [_echo_tool(t) for t in req.get("tools", [])],
        "truncation": req.get("truncation") or "disabled",
        "user": req.get("user"),
        "metadata": req.get("metadata") or {},
        "usage": {
            "input_tokens": row.input_tokens,
            "input_tokens_details": {"cached_tokens": row.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": row.output_tokens,
            "output_tokens_details": {"reasoning_tokens": row.reasoning_tokens},
            "total_tokens": row.input_tokens + row.output_tokens,
        },
    }


def _response_error_code(error: dict[str, Any]) -> str:
    # Response.error.code is a closed set in the openai SDK; the upstream's own code stays in the
    # error envelope of the failed request.
    status = int(error.get("status", 500))
    if status == 429:
        return "rate_limit_exceeded"
    if 400 <= status < 500:
        return "invalid_prompt"
    return "server_error"
