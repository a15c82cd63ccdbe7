"""Responses items and tools ⇄ chat-completions messages and tools."""

import json
from typing import Any

from core.ids import new_id


def _content_to_chat(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(p.get("type") in ("input_text", "output_text", "text", "refusal") for p in parts):
        return "".join(p.get("text") or p.get("refusal") or "" for p in parts)
    out: list[dict[str, Any]] = []
    for p in parts:
        if p.get("type") == "input_image":
            out.append({"type": "image_url", "image_url": {"url": p.get("image_url") or "",
                                                           "detail": p.get("detail", "auto")}})
        else:
            out.append({"type": "text", "text": p.get("text") or p.get("refusal") or ""})
    return out


def items_to_messages(instructions: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat messages an upstream sees for this context."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        kind = item.get("type")
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            messages.append({"role": role, "content": _content_to_chat(item["content"])})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            # Calls of one turn travel together in one assistant message, as chat APIs expect.
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return messages


def tools_to_chat(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses function tools as chat tools."""
    out = []
    for t in tools:
        fn: dict[str, Any] = {"name": t["name"], "parameters": t.get("parameters") or {"type": "object",
                                                                                      "properties": {}}}
        if t.get("description"):
            fn["description"] = t["description"]
        if t.get("strict") is not None:
            fn["strict"] = t["strict"]
        out.append({"type": "function", "function": fn})
    return out


def tool_choice_to_chat(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    """Responses tool_choice as chat tool_choice."""
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def completion_to_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Output items for one chat completion message: an assistant message, then function calls."""
    items: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        items.append({"id": new_id("msg"), "type": "message", "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        args = fn.get("arguments")
        if not isinstance(args, str):
            args = json.dumps(args or {})
        items.append({"id": new_id("fc"), "type": "function_call", "call_id": call.get("id") or new_id("call"),
                      "name": fn.get("name", ""), "arguments": args, "status": "completed"})
    return items
