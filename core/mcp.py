"""Remote MCP servers in a response: which tools the model is offered, from the `mcp_list_tools` items in context.

A request's `_mcp_servers` maps each remote server's label to how to reach it (`url`, `headers`, or `registered`
for one an admin registered, whose secrets stay in the catalog) and its `allowed_tools`.
"""

from typing import Any

from core.stream_events import SERVER_LABEL


def listed_tools(servers: dict[str, Any], context: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each server's tools, from the newest successful `mcp_list_tools` item for its label in the context."""
    listed: dict[str, list[dict[str, Any]]] = {}
    for item in context:
        if item.get("type") == "mcp_list_tools" and item.get("server_label") in servers and not item.get("error"):
            listed[item["server_label"]] = item.get("tools") or []
    return listed


def mcp_functions(servers: dict[str, Any], context: list[dict[str, Any]],
                  taken: set[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The remote tools as function tools for the model, and the server label of each by name.

    A name already `taken` (a function tool of the request) or offered by an earlier server is not offered again:
    the model can only call a name, so each name must lead to one tool.
    """
    functions: list[dict[str, Any]] = []
    labels: dict[str, str] = {}
    for label, tools in listed_tools(servers, context).items():
        allowed = servers[label].get("allowed_tools")
        for tool in tools:
            name = tool.get("name")
            if not name or name in taken or name in labels or (allowed is not None and name not in allowed):
                continue
            labels[name] = label
            functions.append({"type": "function", "name": name, "description": tool.get("description") or "",
                              "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}})
    return functions, labels


def needs_approval(require_approval: Any, name: str) -> bool:
    """Whether a call of this tool waits for the client's approval: `never`, `always` (the spec's default), or
    per tool (`{"never": {"tool_names": [...]}, "always": {...}}`; a tool in neither list is asked about)."""
    if require_approval == "never":
        return False
    if isinstance(require_approval, dict):
        if name in ((require_approval.get("always") or {}).get("tool_names") or []):
            return True
        return name not in ((require_approval.get("never") or {}).get("tool_names") or [])
    return True


def with_remote_tools(request: dict[str, Any], context: list[dict[str, Any]],
                      ) -> tuple[dict[str, Any], dict[str, str], frozenset[str]]:
    """The request as a model step sees it, its function tools joined by the remote servers' listed tools; the
    server label of every tool the server runs, by name (registered tools under ours); and the names whose calls
    wait for the client's approval."""
    servers = request.get("_mcp_servers") or {}
    functions, labels = mcp_functions(servers, context, taken={t["name"] for t in request.get("_model_tools") or []})
    runs = {name: SERVER_LABEL for name in request.get("_server_tools") or []} | labels
    ask = frozenset(name for name, label in labels.items() if needs_approval(servers[label].get("require_approval"),
                                                                              name))
    if functions:
        request = {**request, "_model_tools": [*(request.get("_model_tools") or []), *functions]}
    return request, runs, ask


def without_credentials(request: dict[str, Any]) -> dict[str, Any] | None:
    """The stored request without the remote MCP credentials it carried (request headers and `authorization`, kept
    only while the response runs); None when it carried none."""
    servers = request.get("_mcp_servers") or {}
    if not any(server.get("headers") for server in servers.values()) and not any(
            t.get("type") == "mcp" and (t.get("headers") or t.get("authorization")) for t in request.get("tools", [])):
        return None
    return {**request,
            "_mcp_servers": {label: {**server, "headers": {}} for label, server in servers.items()},
            "tools": [{k: v for k, v in t.items() if k not in ("headers", "authorization")} if t.get("type") == "mcp"
                      else t for t in request.get("tools", [])]}
