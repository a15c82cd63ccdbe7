"""`agentrunner-scripted`: a built-in offline model that shows a tool loop without any upstream.

It calls the first offered tool when the conversation has no tool result since the last user
message, then answers with what the tool returned; otherwise it echoes the user.
"""

import json
from typing import Any


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m["role"] == "user":
            content = m["content"]
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _sample(schema: dict[str, Any], text: str) -> Any:
    """A value of the schema's type (objects filled field by field), with `text` wherever a string goes."""
    kind = schema.get("type", "string")
    if kind == "object":
        return _arguments_for(schema, text)
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "null": None}.get(kind, text)


def _arguments_for(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {name: _sample(spec, text) for name, spec in (schema.get("properties") or {}).items()}


def _count_tokens(value: Any) -> int:
    return len(json.dumps(value).split())


def scripted_completion(messages: list[dict[str, Any]], tools: list[dict[str, Any]], call_id: str,
                        tool_choice: Any = None, response_format: dict[str, Any] | None = None) -> dict[str, Any]:
    """A chat-completions-shaped answer for these messages (`tool_choice: "none"` offers no tools).

    Asked for JSON (`response_format`), the answer is a JSON object: one matching the schema, filled with the
    tool results or the user's words.
    """
    if tool_choice == "none":
        tools = []
    since_user: list[dict[str, Any]] = []
    for m in reversed(messages):
        if m["role"] == "user":
            break
        since_user.append(m)
    tool_outputs = [m for m in reversed(since_user) if m["role"] == "tool"]
    user_text = _last_user_text(messages)
    message: dict[str, Any]
    if tools and not tool_outputs:
        fn = tools[0]["function"]
        args = _arguments_for(fn.get("parameters") or {}, user_text)
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": fn["name"], "arguments": json.dumps(args)}}]}
        finish = "tool_calls"
    else:
        results = "; ".join(str(m["content"]) for m in tool_outputs)
        fmt = response_format or {}
        if fmt.get("type") == "json_schema":
            content = json.dumps(_sample(fmt["json_schema"].get("schema") or {"type": "object"}, results or user_text))
        elif fmt.get("type") == "json_object":
            content = json.dumps({"answer": results or user_text})
        elif tool_outputs:
            content = f"The tool returned: {results}"
        else:
            content = f"[agentrunner-scripted, a built-in offline model] You said: {user_text}"
        message = {"role": "assistant", "content": content}
        finish = "stop"
    prompt_tokens = _count_tokens(messages)
    completion_tokens = _count_tokens(message)
    return {"choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}
