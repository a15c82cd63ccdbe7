"""What the responses routes do, over PostgreSQL and Temporal."""

import asyncio
import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core import search_attributes as sa
from core.contracts import ResponseOutcome, ResponseWorkflowInput
from core.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable, UpstreamError
from core.ids import idempotent_response_id, new_id
from core.settings import Settings
from core.wire import CreateResponseRequest, mcp_allowed_tools, normalize_input, parse_request
from db import responses as db
from db.catalog import list_tools, resolve_model, tools_by_name
from db.tables import TERMINAL_STATUSES, Response

log = logging.getLogger("agentrunner.api")
WORKFLOW = "ResponseWorkflow"
_CLOSED_AS = {
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TERMINATED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.COMPLETED: "failed",  # completed workflows finalize first; an open row is an anomaly
}


# Temporal priority keys: lower runs sooner; 3 is Temporal's default.
PRIORITY_BY_TIER = {"priority": 1, "scale": 2, "default": 3, "flex": 5}


def effective_tier(requested: str | None) -> str:
    """The tier a request runs at (`auto` and unset mean `default`)."""
    return "default" if requested in (None, "auto") else requested


def _summary(model: str, req: CreateResponseRequest) -> str:
    """`<model> · <start of the user's input>`, the line the Temporal UI shows for the workflow."""
    text = req.input if isinstance(req.input, str) else ""
    for item in reversed(req.input if isinstance(req.input, list) else []):
        if item.get("role") == "user":
            content = item.get("content", "")
            text = content if isinstance(content, str) else " ".join(
                p.get("text", "") for p in content if isinstance(p, dict))
            break
    text = " ".join(text.split())
    return f"{model} · {text[:80]}{'…' if len(text) > 80 else ''}"


def _request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class ResponseService:
    """Creates, waits for, cancels, deletes and reconciles responses."""

    sessions: async_sessionmaker[AsyncSession]
    temporal: Client
    settings: Settings

    async def create(self, owner_id: str, body: Any, idempotency_key: str | None) -> Response:
        """Validate, store the response and its input, and start its workflow."""
        req = parse_request(body)
        async with self.sessions() as s:
            row, items, is_new = await self._prepare(s, owner_id, req, body, idempotency_key)
            if is_new:
                s.add(row)
                try:
                    await s.flush()
                    db.add_items(s, row.id, owner_id, "input", items, 0)
                    await s.commit()
                except IntegrityError:
                    # The same Idempotency-Key raced us; answer with the response it created.
                    await s.rollback()
                    existing = await db.get_response(s, row.id)
                    if existing is None:
                        raise
                    return self._same_request(existing, row.request_hash)
        if not is_new and row.status in TERMINAL_STATUSES:
            return row
        await self._start(row, req, delete_on_failure=is_new)
        return row

    async def _prepare(self, s: AsyncSession, owner_id: str, req: CreateResponseRequest, body: dict[str, Any],
                       idempotency_key: str | None) -> tuple[Response, list[dict[str, Any]], bool]:
        request_hash = _request_hash(body)
        if idempotency_key:
            response_id = idempotent_response_id(owner_id, idempotency_key)
            existing = await db.get_response(s, response_id)
            if existing is not None:
                return self._same_request(existing, request_hash), [], False
        else:
            response_id = new_id("resp")
        if await resolve_model(s, self.settings, req.model) is None:
            raise InvalidRequest(f"The model '{req.model}' does not exist or you do not have access to it.",
                                 param="model", code="model_not_found")
        if req.previous_response_id:
            prev = await db.get_response(s, req.previous_response_id, owner_id)
            if prev is None:
                raise InvalidRequest(f"Previous response with id '{req.previous_response_id}' not found.",
                                     param="previous_response_id", code="previous_response_not_found")
            if prev.status not in TERMINAL_STATUSES:
                raise Conflict(f"Previous response '{prev.id}' is still {prev.status}.",
                               param="previous_response_id")
        items = await self._resolve_references(s, owner_id, normalize_input(req.input))
        model_tools, server_tools = await self._model_tools(s, req)
        request = req.model_dump(mode="json", exclude={"input"})
        request |= {"_model_tools": model_tools, "_server_tools": server_tools}
        row = Response(id=response_id, owner_id=owner_id, status="queued", model=req.model, request=request,
                       previous_response_id=req.previous_response_id, idempotency_key=idempotency_key,
                       request_hash=request_hash)
        return row, items, True

    @staticmethod
    async def _model_tools(s: AsyncSession, req: CreateResponseRequest) -> tuple[list[dict[str, Any]], list[str]]:
        """The function tools the model is offered, and which of them the server runs.

        A function tool named like a registered tool runs server-side (its registered schema fills in what the
        request left out); an `mcp` entry with server_label "agentrunner" offers the registered tools it allows.
        """
        functions = [t for t in req.tools if t["type"] == "function"]
        registered = await tools_by_name(s, [t["name"] for t in functions])
        offered = []
        for t in functions:
            reg = registered.get(t["name"])
            if reg is not None:
                t = {**t, "description": t.get("description") or reg.description,
                     "parameters": t.get("parameters") or reg.parameters}
            offered.append(t)
        every = {t.name: t for t in await list_tools(s)} if any(t["type"] == "mcp" for t in req.tools) else {}
        for i, entry in enumerate(req.tools):
            if entry["type"] != "mcp":
                continue
            allowed = mcp_allowed_tools(entry)
            missing = sorted(set(allowed or ()) - set(every))
            if missing:
                raise InvalidRequest(f"No registered tools named {missing}.", param=f"tools[{i}].allowed_tools",
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

    @staticmethod
    def _same_request(existing: Response, request_hash: str) -> Response:
        if existing.request_hash != request_hash:
            raise Conflict("This Idempotency-Key was already used with a different request body.",
                           code="idempotency_key_reused")
        return existing

    @staticmethod
    async def _resolve_references(s: AsyncSession, owner_id: str,
                                  items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        refs = [i["id"] for i in items if i["type"] == "item_reference"]
        found = await db.items_by_ids(s, owner_id, refs) if refs else {}
        resolved = []
        for index, item in enumerate(items):
            if item["type"] == "item_reference":
                if item["id"] not in found:
                    raise InvalidRequest(f"Item with id '{item['id']}' not found.", param=f"input[{index}].id",
                                         code="item_not_found")
                item = found[item["id"]]
            resolved.append(item)
        return resolved

    async def _start(self, row: Response, req: CreateResponseRequest, *, delete_on_failure: bool) -> None:
        st = self.settings
        inp = ResponseWorkflowInput(response_id=row.id, model=row.model, max_tool_calls=req.max_tool_calls,
                                    max_model_calls=st.max_model_calls, policy=st.step_policy())
        tier = effective_tier(req.service_tier)
        attributes = TypedSearchAttributes([
            SearchAttributePair(sa.AGENT_OWNER, row.owner_id), SearchAttributePair(sa.AGENT_MODEL, row.model),
            SearchAttributePair(sa.AGENT_SERVICE_TIER, tier), SearchAttributePair(sa.AGENT_STATUS, "queued")])
        try:
            await self.temporal.start_workflow(
                WORKFLOW, inp, id=row.id, task_queue=st.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                execution_timeout=timedelta(seconds=st.response_timeout_seconds),
                search_attributes=attributes, static_summary=_summary(row.model, req),
                # Activities inherit it: the whole loop runs at the tier's priority, fair across owners.
                priority=Priority(priority_key=PRIORITY_BY_TIER[tier], fairness_key=row.owner_id),
            )
        except WorkflowAlreadyStartedError:
            return  # it ran already (an idempotent retry of a finished response)
        except Exception as exc:
            log.exception("could not start workflow %s", row.id)
            if delete_on_failure:
                async with self.sessions() as s:
                    await db.delete_response(s, row.id)
            raise ServiceUnavailable("The response could not be started; retry shortly.") from exc
        log.info("response started (model %s)", row.model, extra={"response_id": row.id})

    async def wait(self, row: Response) -> Response:
        """Block until the response is terminal; an upstream failure is raised as the upstream's error."""
        handle = self.temporal.get_workflow_handle(row.id, result_type=ResponseOutcome)
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
        row = await self.reconcile(row.id)
        if row.status == "failed" and row.error:
            e = row.error
            raise UpstreamError(int(e.get("status", 500)), e.get("message", "The response failed."),
                                type_=e.get("type"), param=e.get("param"), code=e.get("code"))
        return row

    async def get(self, owner_id: str, response_id: str) -> Response:
        """An owner's response; 404 for anyone else."""
        async with self.sessions() as s:
            row = await db.get_response(s, response_id, owner_id)
        if row is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return row

    async def cancel(self, owner_id: str, response_id: str) -> Response:
        """Cancel an open response; a cancelled one is returned as is; a finished one is a 400."""
        row = await self.get(owner_id, response_id)
        if row.status == "cancelled":
            return row
        if row.status in TERMINAL_STATUSES:
            raise InvalidRequest(f"Cannot cancel a response with status '{row.status}'.",
                                 param="response_id", code="response_not_cancellable")
        handle = self.temporal.get_workflow_handle(response_id, result_type=ResponseOutcome)
        try:
            await handle.cancel()
            with contextlib.suppress(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), timeout=self.settings.cancel_wait_seconds)
        except (TimeoutError, RPCError):
            # No worker took the cancel in time (or the workflow is gone): stop it the hard way.
            with contextlib.suppress(RPCError):
                await handle.terminate(reason="cancel requested; no worker completed it in time")
        return await self._end(response_id, "cancelled")

    async def delete(self, owner_id: str, response_id: str) -> None:
        """Delete a response; an open one's workflow is terminated first so nothing writes after."""
        row = await self.get(owner_id, response_id)
        if row.status not in TERMINAL_STATUSES:
            with contextlib.suppress(RPCError):
                await self.temporal.get_workflow_handle(response_id).terminate(reason="response deleted")
        async with self.sessions() as s:
            await db.delete_response(s, response_id)

    async def reconcile(self, response_id: str) -> Response:
        """If the row is open but its workflow has closed (or never started), mark it terminal."""
        async with self.sessions() as s:
            row = await db.get_response(s, response_id)
        if row is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        if row.status in TERMINAL_STATUSES:
            return row
        try:
            desc = await self.temporal.get_workflow_handle(response_id).describe()
            status = _CLOSED_AS.get(desc.status) if desc.status is not None else None
            reason = f"the response's workflow ended as {desc.status.name if desc.status else 'unknown'}"
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                return row
            status, reason = "failed", "the response's workflow was never started"
        if status is None:
            return row
        error = None if status == "cancelled" else {"status": 500, "message": reason, "code": "server_error"}
        return await self._end(response_id, status, error)

    async def _end(self, response_id: str, status: str, error: dict[str, Any] | None = None) -> Response:
        """Move an open response to a terminal status; the row as it now is (someone may have ended it first)."""
        async with self.sessions() as s:
            fresh = await db.set_status(s, response_id, status, only_from=db.OPEN_STATUSES, error=error)
            if fresh is None:
                fresh = await db.get_response(s, response_id)
        assert fresh is not None
        return fresh

    async def reconcile_stale(self) -> int:
        """Reconcile every open response untouched for a while; returns how many were fixed."""
        async with self.sessions() as s:
            ids = await db.stale_open_responses(s, timedelta(seconds=self.settings.reconcile_min_age_seconds))
        fixed = 0
        for response_id in ids:
            with contextlib.suppress(NotFound):
                if (await self.reconcile(response_id)).status in TERMINAL_STATUSES:
                    fixed += 1
        return fixed
