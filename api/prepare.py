"""Turning a create request into a response row and its input items, checked against what is stored."""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from activities.catalog_cache import CatalogCache, cached
from activities.fetch_guard import check_url
from core.context_window import fit_messages
from core.convert import items_to_messages, tools_to_chat
from core.errors import Conflict, InvalidRequest, NotFound
from core.fetch_policy import FetchRefused
from core.ids import idempotent_response_id, new_id
from core.mcp import listed_tools
from core.model_target import ModelTarget
from core.settings import Settings
from core.status import TERMINAL_STATUSES, ResponseStatus
from core.stream_events import SERVER_LABEL
from core.wire import (
    CompactRequest,
    CreateResponseRequest,
    mcp_allowed_tools,
    normalize_input,
    parse_request,
    validate_body,
)
from db import conversations
from db import responses as db
from db.catalog import list_tools, mcp_servers_by_label, resolve_model, tools_by_name
from db.compactions import completed_summaries
from db.tables import Compaction, Response


@dataclass
class Prepared:
    """A validated create request: the row to store (or the one an Idempotency-Key already made) and its input."""

    request: CreateResponseRequest
    row: Response
    items: list[dict[str, Any]]
    is_new: bool


async def require_model(s: AsyncSession, settings: Settings, alias: str, owner_id: str,
                        catalog: CatalogCache | None = None) -> ModelTarget:
    """Where `model` goes; a 404 naming `model` when nothing serves it or the owner may not use it (the same
    answer, so a tenant cannot tell another's models exist)."""
    target = await cached(catalog, ("model", alias, owner_id), lambda: resolve_model(s, settings, alias, owner_id))
    if target is None:
        raise NotFound(f"The model '{alias}' does not exist or you do not have access to it.",
                       param="model", code="model_not_found")
    return target


def _request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def prepare(s: AsyncSession, settings: Settings, owner_id: str, body: Any,
                  idempotency_key: str | None, catalog: CatalogCache | None = None) -> Prepared:
    """Validate a create body against the catalog and stored responses; nothing is written."""
    req = parse_request(body)
    if not req.store and (req.background or idempotency_key):
        # A store-false response is gone once it ends: only the request that made it gets to see it.
        raise InvalidRequest("A response with store: false cannot be background or answer an Idempotency-Key "
                             "retry: it is deleted when it ends. Set store to true.", param="store",
                             code="invalid_value")
    request_hash = _request_hash(body)
    if idempotency_key:
        response_id = idempotent_response_id(owner_id, idempotency_key)
        existing = await db.get_response(s, response_id)
        if existing is not None:
            return Prepared(req, same_request(existing, request_hash), [], False)
    else:
        response_id = new_id("resp")
    target = await require_model(s, settings, req.model, owner_id, catalog)
    prev = await _ended_previous(s, owner_id, req.previous_response_id) if req.previous_response_id else None
    conversation_id = await _join_conversation(s, owner_id, req) if req.conversation is not None else None
    items = await _resolve_references(s, owner_id, normalize_input(req.input, cache_ttls=settings.cache_control_ttls))
    model_tools, server_tools = await _model_tools(s, req, owner_id, catalog)
    remote = [(i, t) for i, t in enumerate(req.tools) if t["type"] == "mcp" and t["server_label"] != SERVER_LABEL]
    answers = any(item["type"] == "mcp_approval_response" for item in items)
    history: list[dict[str, Any]] = []
    if remote or answers or (target.context_window and req.truncation != "auto"):
        history = (await db.context_items(s, prev.id) if prev else
                   await conversations.all_items(s, conversation_id) if conversation_id else [])
    if target.context_window and req.truncation != "auto":
        await _check_window(s, owner_id, req, target.context_window, history + items, model_tools)
    mcp_servers = await _remote_mcp_servers(s, settings, remote, owner_id)
    request = req.model_dump(mode="json", exclude={"input", *(req.model_extra or {})})
    request |= {"_model_tools": model_tools, "_server_tools": server_tools, "_mcp_servers": mcp_servers,
                # A server whose tools the context lists already (an earlier turn) is not listed again.
                "_mcp_list": sorted(set(mcp_servers) - set(listed_tools(mcp_servers, history + items))),
                "_approved": approved_calls(items, history, mcp_servers) if answers else []}
    row = Response(id=response_id, owner_id=owner_id, status=ResponseStatus.QUEUED, model=req.model, request=request,
                   previous_response_id=req.previous_response_id, idempotency_key=idempotency_key,
                   request_hash=request_hash, conversation_id=conversation_id)
    return Prepared(req, row, items, True)


async def _remote_mcp_servers(s: AsyncSession, settings: Settings, entries: list[tuple[int, dict[str, Any]]],
                              owner_id: str) -> dict[str, Any]:
    """How to reach each remote MCP server the request names (see core.mcp), each URL checked against the fetch
    policy now: one it may not fetch is a 400 before anything is stored or requested."""
    registered = await mcp_servers_by_label(s, [t["server_label"] for _, t in entries if not t.get("server_url")],
                                            owner_id)
    servers: dict[str, Any] = {}
    for i, entry in entries:
        label = entry["server_label"]
        if label in servers:
            raise InvalidRequest(f"Two mcp tools are labelled {label!r}.", param=f"tools[{i}].server_label",
                                 code="invalid_value")
        if entry.get("server_url"):
            headers = dict(entry.get("headers") or {})
            if entry.get("authorization"):
                headers["Authorization"] = f"Bearer {entry['authorization']}"
            server: dict[str, Any] = {"url": entry["server_url"], "headers": headers}
        elif label in registered:
            server = {"url": registered[label].url, "registered": True}  # its secrets stay in the catalog
        else:
            raise NotFound(f"No MCP server is registered as {label!r} for you; give its server_url.",
                           param=f"tools[{i}].server_label", code="mcp_server_not_found")
        try:
            await check_url(server["url"], settings.fetch)
        except FetchRefused as exc:
            raise InvalidRequest(f"This server may not reach {server['url']}: {exc}.", param=f"tools[{i}].server_url",
                                 code="url_not_allowed") from exc
        servers[label] = {**server, "allowed_tools": mcp_allowed_tools(entry),
                          "require_approval": entry.get("require_approval")}
    return servers


def approved_calls(items: list[dict[str, Any]], history: list[dict[str, Any]],
                   servers: dict[str, Any]) -> list[dict[str, Any]]:
    """The calls this request's `mcp_approval_response` items approve, to run before its first model call.

    An approval must answer a request in the context (the previous_response_id chain or the conversation, which
    makes it the owner's), once: one answered before, or twice here, is a 400, as is one for a server the request
    does not name (its credentials come with the request). A stateless client re-sending history that already holds
    the call an approval led to has it skipped, not run again.
    """
    known = history + items
    requests = {i["id"]: i for i in known if i.get("type") == "mcp_approval_request"}
    answered = {i["approval_request_id"] for i in history if i.get("type") == "mcp_approval_response"}
    ran = {i["approval_request_id"] for i in known if i.get("type") == "mcp_call" and i.get("approval_request_id")}
    calls, seen = [], set()
    for index, item in enumerate(items):
        if item["type"] != "mcp_approval_response":
            continue
        request_id, param = item["approval_request_id"], f"input[{index}].approval_request_id"
        request = requests.get(request_id)
        if request is None:
            raise InvalidRequest(f"No approval request {request_id!r} in this response's context.", param=param,
                                 code="approval_request_not_found")
        if request_id in answered or request_id in seen:
            raise InvalidRequest(f"Approval request {request_id!r} was answered already.", param=param,
                                 code="approval_already_used")
        seen.add(request_id)
        if not item["approve"] or request_id in ran:
            continue
        if request["server_label"] not in servers:
            raise InvalidRequest(f"Approval request {request_id!r} is for MCP server {request['server_label']!r}, "
                                 "which this request's tools do not name.", param=param, code="invalid_value")
        calls.append({"approval_request_id": request_id,
                      **{k: request[k] for k in ("server_label", "name", "arguments")}})
    return calls


async def _join_conversation(s: AsyncSession, owner_id: str, req: CreateResponseRequest) -> str:
    """The conversation a response reads and appends to, locked until the response is stored (so two creates
    cannot both find it free); a 409 while another response runs on it, whose items would interleave."""
    if req.previous_response_id:
        raise InvalidRequest("Give either 'conversation' or 'previous_response_id', not both.", param="conversation",
                             code="invalid_value")
    if not req.store:
        raise InvalidRequest("A response in a conversation is kept in it: store must be true.", param="store",
                             code="invalid_value")
    conversation_id = req.conversation_id
    assert conversation_id is not None
    if await conversations.get(s, conversation_id, owner_id, lock=True) is None:
        raise NotFound(f"No conversation found with id '{conversation_id}'.", param="conversation",
                       code="conversation_not_found")
    running = await conversations.open_response(s, conversation_id)
    if running is not None:
        raise Conflict(f"Response '{running}' is still running in this conversation; send the next turn when it "
                       "has ended (or cancel it).", param="conversation", code="conversation_busy")
    return conversation_id


async def _model_tools(s: AsyncSession, req: CreateResponseRequest, owner_id: str,
                       catalog: CatalogCache | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The function tools the model is offered, and which of them the server runs.

    A function tool named like a registered tool runs server-side (its registered schema fills in what the
    request left out); an `mcp` entry with server_label "agentrunner" offers the registered tools it allows.
    """
    functions = [t for t in req.tools if t["type"] == "function"]
    names = [t["name"] for t in functions]
    registered = await cached(catalog, ("tools", tuple(names), owner_id), lambda: tools_by_name(s, names, owner_id))
    offered = []
    for t in functions:
        reg = registered.get(t["name"])
        if reg is not None:
            t = {**t, "description": t.get("description") or reg.description,
                 "parameters": t.get("parameters") or reg.parameters}
        offered.append(t)
    ours = any(t["type"] == "mcp" and t["server_label"] == SERVER_LABEL for t in req.tools)
    every = {t.name: t for t in await list_tools(s, owner_id)} if ours else {}
    for i, entry in enumerate(req.tools):
        if entry["type"] != "mcp" or entry["server_label"] != SERVER_LABEL:
            continue
        allowed = mcp_allowed_tools(entry)
        missing = sorted(set(allowed or ()) - set(every))
        if missing:
            raise NotFound(f"No registered tools named {missing}.", param=f"tools[{i}].allowed_tools",
                           code="tool_not_found")
        for name in allowed if allowed is not None else sorted(every):
            if all(t["name"] != name for t in offered):
                reg = every[name]
                offered.append({"type": "function", "name": name, "description": reg.description,
                                "parameters": reg.parameters})
            registered[name] = every[name]
    if isinstance(req.tool_choice, dict) and all(t["name"] != req.tool_choice["name"] for t in offered):
        raise InvalidRequest(f"tool_choice names {req.tool_choice['name']!r}, which is not among the tools.",
                             param="tool_choice", code="invalid_value")
    return offered, sorted(registered)


def same_request(existing: Response, request_hash: str) -> Response:
    """The response an Idempotency-Key made, if this is the same request again; 409 otherwise."""
    if existing.request_hash != request_hash:
        raise Conflict("This Idempotency-Key was already used with a different request body.",
                       code="idempotency_key_reused")
    return existing


async def _resolve_references(s: AsyncSession, owner_id: str,
                              items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored items in place of `item_reference`s; compaction items checked to be this owner's, completed."""
    refs = [i["id"] for i in items if i["type"] == "item_reference"]
    found = await db.items_by_ids(s, owner_id, refs) if refs else {}
    compacted = await completed_summaries(s, owner_id, items)
    resolved = []
    for index, item in enumerate(items):
        if item["type"] == "item_reference":
            if item["id"] not in found:
                raise InvalidRequest(f"Item with id '{item['id']}' not found.", param=f"input[{index}].id",
                                     code="item_not_found")
            item = found[item["id"]]
        elif item["type"] == "compaction" and item["encrypted_content"] not in compacted:
            # Opaque to clients, usable only by the owner of the compaction it names.
            raise InvalidRequest("The compaction item's encrypted_content is not one of your compactions.",
                                 param=f"input[{index}].encrypted_content", code="invalid_encrypted_content")
        resolved.append(item)
    return resolved


async def _check_window(s: AsyncSession, owner_id: str, req: CreateResponseRequest, window: int,
                        context: list[dict[str, Any]], tools: list[dict[str, Any]]) -> None:
    """`truncation: "disabled"`: a first model call that cannot fit the context window is a 400 naming `input`,
    before anything is stored (the loop checks every later call the same way)."""
    messages = items_to_messages(req.instructions, context,
                                 await completed_summaries(s, owner_id, context))
    _, refused = fit_messages(messages, window=window, tools=tools_to_chat(tools), auto=False,
                              max_output_tokens=req.max_output_tokens)
    if refused:
        raise InvalidRequest(refused, param="input", code="context_length_exceeded")


async def _ended_previous(s: AsyncSession, owner_id: str, previous_response_id: str) -> Response:
    """The owner's previous response, which must have ended."""
    prev = await db.get_response(s, previous_response_id, owner_id)
    if prev is None or not db.is_stored(prev):
        raise InvalidRequest(f"Previous response with id '{previous_response_id}' not found.",
                             param="previous_response_id", code="previous_response_not_found")
    if prev.status not in TERMINAL_STATUSES:
        raise Conflict(f"Previous response '{prev.id}' is still {prev.status}.", param="previous_response_id")
    return prev


async def prepare_compaction(s: AsyncSession, settings: Settings, owner_id: str, body: Any) -> Compaction:
    """Validate a compact body and gather the window it compacts; nothing is written."""
    req = validate_body(CompactRequest, body)
    await require_model(s, settings, req.model, owner_id)
    window = []
    if req.previous_response_id:
        window = await db.context_items(s, (await _ended_previous(s, owner_id, req.previous_response_id)).id)
    if req.input is not None:
        window += await _resolve_references(s, owner_id, normalize_input(req.input,
                                                                        cache_ttls=settings.cache_control_ttls))
    if not window:
        raise InvalidRequest("There is nothing to compact: send 'input' or 'previous_response_id'.", param="input",
                             code="missing_required_parameter")
    return Compaction(id=new_id("cmp"), owner_id=owner_id, model=req.model, status="running",
                      instructions=req.instructions, items=window)
