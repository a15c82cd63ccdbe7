"""Responses items and tools ⇄ chat-completions messages and tools."""

import json
from collections.abc import Mapping
from typing import Any

from core.ids import new_id
from core.stream_events import (
    function_call_item,
    mcp_approval_request_item,
    mcp_call_item,
    message_item,
    reasoning_item,
)


def _content_to_chat(parts: list[dict[str, Any]], cache_control: bool) -> str | list[dict[str, Any]]:
    marked = cache_control and any("cache_control" in p for p in parts)
    if not marked and all(p.get("type") in ("input_text", "output_text", "text", "refusal") for p in parts):
        return "".join(p.get("text") or p.get("refusal") or "" for p in parts)
    out: list[dict[str, Any]] = []
    for p in parts:
        if p.get("type") == "input_image":
            out.append({"type": "image_url", "image_url": {"url": p.get("image_url") or "",
                                                           "detail": p.get("detail", "auto")}})
        elif p.get("type") == "input_file":
            out.append({"type": "file", "file": {k: p[k] for k in ("file_data", "file_id", "filename") if p.get(k)}})
        else:
            out.append({"type": "text", "text": p.get("text") or p.get("refusal") or ""})
        if marked and "cache_control" in p:
            out[-1]["cache_control"] = p["cache_control"]
    return out


def error_text(error: Any) -> str:
    """The message of an `mcp_call` error (one of the spec's error objects, or a plain string)."""
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            return str(error["message"])
        return " ".join(str(c.get("text", "")) for c in error.get("content") or [] if isinstance(c, dict))
    return str(error)


def _is_call(item: dict[str, Any]) -> bool:
    return item.get("type") in ("function_call", "mcp_call")


def _same_turn(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return _is_call(a) and _is_call(b) and a.get("_turn") == b.get("_turn")


COMPACTION_PREFIX = "Summary of the earlier conversation, which it replaces:\n"


def refusals(items: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], str]]:
    """For each approval response among these items that denied its request: the request and the result the model
    gets in place of running it, by the response item's id. (An approved request needs none: the `mcp_call` that
    ran it follows.)"""
    requests = {i["id"]: i for i in items if i.get("type") == "mcp_approval_request"}
    out = {}
    for item in items:
        request = requests.get(item.get("approval_request_id", ""))
        if item.get("type") == "mcp_approval_response" and not item.get("approve") and request is not None:
            reason = f" Reason: {item['reason']}" if item.get("reason") else ""
            out[item["id"]] = (request, f"The user denied this call; it was not run.{reason}")
    return out


def compaction_refs(items: list[dict[str, Any]]) -> list[str]:
    """The compactions these items refer to (their `encrypted_content`)."""
    return [i["encrypted_content"] for i in items if i.get("type") == "compaction"]


def items_to_messages(instructions: str | None, items: list[dict[str, Any]],
                      summaries: dict[str, str] | None = None, *, cache_control: bool = False) -> list[dict[str, Any]]:
    """The chat messages an upstream sees for this context.

    `cache_control` breakpoints on parts are kept for an upstream that takes them, else stripped.
    A `compaction` item stands for the window it summarized, everything before it: a system message with the
    summary (`summaries`, by reference), then what follows it.

    Consecutive calls (client-side `function_call`, server-side `mcp_call`) of one model turn form one
    assistant message, as the model produced them; a server-side call's result follows that message as a tool
    message. Stored outputs name their turn in `_turn`; re-sent input items have none, so adjacency decides.
    """
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    # A compaction stands for everything before it: the model sees its summary, then what came after.
    last_compaction = max((i for i, item in enumerate(items) if item.get("type") == "compaction"), default=0)
    items = items[last_compaction:]
    refused = refusals(items)
    server_results: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        kind = item.get("type")
        if kind == "message":
            if item.get("status") == "incomplete" and item["role"] == "assistant":
                continue  # a streamed answer cut short by a retry; its replacement follows
            role = "system" if item["role"] == "developer" else item["role"]
            messages.append({"role": role, "content": _content_to_chat(item["content"], cache_control)})
        elif _is_call(item):
            call_id = item["call_id"] if kind == "function_call" else item["id"]
            call = {"id": call_id, "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if i > 0 and _same_turn(items[i - 1], item):
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            if kind == "mcp_call":
                result = (item.get("output") if item.get("error") is None
                          else json.dumps({"error": error_text(item["error"])}))
                server_results.append({"role": "tool", "tool_call_id": call_id, "content": result or ""})
            if i + 1 == len(items) or not _same_turn(item, items[i + 1]):
                messages += server_results
                server_results = []
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
        elif kind == "compaction":
            summary = (summaries or {}).get(item["encrypted_content"], "")
            messages.append({"role": "system", "content": COMPACTION_PREFIX + summary})
        elif item.get("id") in refused:
            request, result = refused[item["id"]]
            messages += [{"role": "assistant", "content": None, "tool_calls": [{
                "id": request["id"], "type": "function",
                "function": {"name": request["name"], "arguments": request["arguments"]}}]},
                {"role": "tool", "tool_call_id": request["id"], "content": result}]
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


def response_format_to_chat(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """Responses `text.format` as chat `response_format` (None for plain text)."""
    fmt = (text or {}).get("format") or {}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "description", "strict") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": schema}
    return None


def tool_choice_to_chat(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    """Responses tool_choice as chat tool_choice."""
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def reasoning_of(message: dict[str, Any]) -> str:
    """The reasoning text on a chat message or delta: `reasoning_content` (vLLM, DeepSeek) or `reasoning` (Ollama,
    OpenRouter); "" when there is none."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def reasoning_summary(text: str, mode: str | None) -> str | None:
    """The summary a request asked for (`reasoning.summary`) of reasoning from a chat upstream, which gives none:
    the reasoning itself (`auto`, `detailed`), or its first paragraph cut at 300 characters (`concise`)."""
    if not mode or not text:
        return None
    if mode == "concise":
        first = text.strip().split("\n\n", 1)[0]
        return first if len(first) <= 300 else first[:299] + "…"
    return text


def completion_to_items(message: dict[str, Any], server_tools: Mapping[str, str] | None = None,
                        ask: frozenset[str] = frozenset(),
                        summary_mode: str | None = None, logprobs: list[dict[str, Any]] | None = None,
                        ) -> list[dict[str, Any]]:
    """Output items for one chat completion message: its reasoning, an assistant message, then its calls.

    A call of a tool the server runs (`server_tools`: the server label of each by name) is an `mcp_call`, which
    clients treat as executed by the server, or an `mcp_approval_request` when its name is one to `ask` the client
    about first; any other call is a `function_call` for the client to run.
    """
    items: list[dict[str, Any]] = []
    reasoning = reasoning_of(message)
    if reasoning:
        items.append(reasoning_item(new_id("rs"), reasoning, reasoning_summary(reasoning, summary_mode)))
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        items.append(message_item(new_id("msg"), text, "completed", logprobs))
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        args = fn.get("arguments")
        if not isinstance(args, str):
            args = json.dumps(args or {})
        name = fn.get("name", "")
        if server_tools and name in server_tools:
            label = server_tools[name]
            items.append(mcp_approval_request_item(name, args, label) if name in ask
                         else mcp_call_item(name, args, label))
        else:
            items.append(function_call_item(call.get("id") or new_id("call"), name, args))
    return items


_ID_PREFIX = {"message": "msg", "reasoning": "rs", "function_call": "fc", "mcp_call": "mcp"}


def unique_ids(items: list[dict[str, Any]], context: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A step's new items with every id and call_id unique in the response's context.

    Upstreams are trusted for ids only as far as they are unique: some local servers number calls `call_0`,
    `call_1`… afresh each turn, or leave ids out, which would pair a tool's output with the wrong call. Such an
    item gets a fresh id; every other id is kept as the upstream gave it.
    """
    taken = {i.get("id") for i in context} | {i.get("call_id") for i in context if i.get("call_id")}
    out = []
    for item in items:
        if not item.get("id") or item["id"] in taken:
            item = {**item, "id": new_id(_ID_PREFIX.get(str(item.get("type")), "item"))}
        if item.get("type") == "function_call" and item.get("call_id") in taken:
            item = {**item, "call_id": new_id("call")}
        taken |= {item["id"], item.get("call_id")}
        out.append(item)
    return out
