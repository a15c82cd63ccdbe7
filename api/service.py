"""The workflow side of responses: start, wait, cancel, delete and reconcile, over PostgreSQL and Temporal.

Every method works in the caller's session (one per request); a read transaction is ended before any wait on
Temporal, so no pooled connection is held while a response runs.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.catalog_cache import CatalogCache
from activities.lifecycle import move_status, render_response
from activities.notifier import EventNotifier
from api.errors import outage
from api.prepare import prepare, prepare_compaction, same_request
from core import search_attributes as sa
from core.contracts import CompactionWorkflowInput, ResponseOutcome, ResponseWorkflowInput
from core.errors import InvalidRequest, NotFound, ServiceUnavailable, UpstreamError
from core.settings import Settings
from core.status import OPEN_STATUSES, TERMINAL_STATUSES, ResponseStatus
from core.tiers import PRIORITY_BY_TIER, effective_tier
from core.wire import CreateResponseRequest
from db import responses as db
from db.compactions import finish_compaction, get_compaction
from db.raw import autocommit
from db.tables import Compaction, Response

log = logging.getLogger("agentrunner.api")
WORKFLOW = "ResponseWorkflowV2"  # new responses; ResponseWorkflow runs those started before it
COMPACTION_WORKFLOW = "CompactionWorkflow"
# A blocking request awaits its workflow's result through Temporal (a long poll, then its cancel) only once the
# response has been open this long: most answers come sooner, by the row's NOTIFY, and need no Temporal call.
RESULT_POLL_AFTER = timedelta(seconds=1)
_CLOSED_AS = {
    WorkflowExecutionStatus.CANCELED: ResponseStatus.CANCELLED,
    WorkflowExecutionStatus.FAILED: ResponseStatus.FAILED,
    WorkflowExecutionStatus.TERMINATED: ResponseStatus.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: ResponseStatus.FAILED,
    # Completed workflows finalize first; an open row is an anomaly.
    WorkflowExecutionStatus.COMPLETED: ResponseStatus.FAILED,
}


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


@dataclass
class ResponseService:
    """Creates, waits for, cancels, deletes and reconciles responses."""

    sessions: async_sessionmaker[AsyncSession]  # for the sweep, which has no request
    engine: AsyncEngine  # the sessions' engine: one-statement work runs on its connections in autocommit
    temporal: Client
    settings: Settings
    notifier: EventNotifier  # wakes a blocking request when its response ends
    catalog: CatalogCache | None = None  # keeps the models and tools requests name

    async def create(self, s: AsyncSession, owner_id: str, body: Any, idempotency_key: str | None) -> Response:
        """Validate, store the response and its input, and start its workflow."""
        p = await prepare(s, self.settings, owner_id, body, idempotency_key, self.catalog)
        row, is_new = p.row, p.is_new
        if is_new:
            try:
                if row.conversation_id:  # `prepare` locked the conversation until the response is stored
                    await db.insert_response(s, row, p.items)
                    await s.commit()
                else:  # one statement, on a connection of its own without a transaction around it
                    await s.commit()  # what `prepare` read
                    async with autocommit(self.engine) as conn:
                        await db.insert_response(conn, row, p.items)
            except UniqueViolation:
                # The same Idempotency-Key raced us: attach to the response it created, like a later retry would
                # (its workflow may not be started yet; starting it again is a no-op).
                await s.rollback()
                existing = await db.get_response(s, row.id)
                if existing is None:
                    raise
                row, is_new = same_request(existing, row.request_hash), False
        if not is_new:
            await s.commit()
            if row.status in TERMINAL_STATUSES:
                return row
        await self._start(s, row, p.request, delete_on_failure=is_new)
        return row

    async def _start(self, s: AsyncSession, row: Response, req: CreateResponseRequest, *,
                     delete_on_failure: bool) -> None:
        st = self.settings
        threshold = req.context_management[0].compact_threshold if req.context_management else None
        inp = ResponseWorkflowInput(response_id=row.id, model=row.model, max_tool_calls=req.max_tool_calls,
                                    compact_threshold=threshold, policy=st.steps,
                                    mcp_list=row.request.get("_mcp_list", []),
                                    approved=[c["approval_request_id"] for c in row.request.get("_approved", [])])
        tier = effective_tier(req.service_tier)
        attributes = TypedSearchAttributes([
            SearchAttributePair(sa.AGENT_OWNER, row.owner_id), SearchAttributePair(sa.AGENT_MODEL, row.model),
            SearchAttributePair(sa.AGENT_SERVICE_TIER, tier),
            SearchAttributePair(sa.AGENT_STATUS, ResponseStatus.QUEUED.value)])
        try:
            await self.temporal.start_workflow(
                WORKFLOW, inp, id=row.id, task_queue=st.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                execution_timeout=timedelta(seconds=st.response_timeout_seconds),
                # Steps run inside workflow tasks (local activities): a task whose worker died is retried elsewhere
                # after this long, so a dead worker's step moves on as fast as a regular activity's heartbeat.
                task_timeout=timedelta(seconds=st.steps.heartbeat_timeout_seconds),
                search_attributes=attributes, static_summary=_summary(row.model, req),
                # Activities inherit it: the whole loop runs at the tier's priority, fair across owners.
                priority=Priority(priority_key=PRIORITY_BY_TIER[tier], fairness_key=row.owner_id),
            )
        except WorkflowAlreadyStartedError:
            return  # it ran already (an idempotent retry of a finished response)
        except Exception as exc:
            log.exception("could not start workflow %s", row.id)
            if delete_on_failure:
                await db.delete_response(s, row.id)
            raise outage(exc) or ServiceUnavailable("The response could not be started; retry shortly.") from exc
        log.info("response started (model %s)", row.model, extra={"response_id": row.id})

    async def compact(self, s: AsyncSession, owner_id: str, body: Any) -> Compaction:
        """Store the window, summarize it in a durable workflow and wait; a failed summary is the upstream's error."""
        row = await prepare_compaction(s, self.settings, owner_id, body)
        s.add(row)
        await s.commit()  # the workflow reads the window from this row
        with contextlib.suppress(WorkflowFailureError):  # its failure is on the row, as the workflow stored it
            await self.temporal.execute_workflow(
                COMPACTION_WORKFLOW, CompactionWorkflowInput(compaction_id=row.id, model=row.model,
                                                             policy=self.settings.steps),
                id=row.id, task_queue=self.settings.task_queue,
                execution_timeout=timedelta(seconds=self.settings.response_timeout_seconds),
                static_summary=f"{row.model} · compaction of {len(row.items)} items",
                priority=Priority(priority_key=PRIORITY_BY_TIER[effective_tier(body.get("service_tier"))],
                                  fairness_key=owner_id))
        # A workflow that ended without storing an outcome (terminated, timed out) must not leave it running.
        await finish_compaction(s, row.id, error={"status": 500, "message": "The compaction did not finish.",
                                                  "code": "server_error"})
        fresh = await get_compaction(s, row.id)
        assert fresh is not None
        if fresh.status != "completed":
            raise UpstreamError.from_failure(fresh.error or {}, "The compaction failed.")
        return fresh

    async def wait(self, s: AsyncSession, row: Response) -> dict[str, Any]:
        """Block until the response is terminal and return its Response object; an upstream failure is raised as
        the upstream's error.

        The row's move to a terminal status NOTIFYs, so the answer goes out as soon as it commits, before the
        workflow's own completion travels through Temporal. A response still open after `RESULT_POLL_AFTER` is
        also read once and its workflow's result awaited beside, for an end that never writes the row
        (terminated, timed out; `reconcile` then records it) or one that came before this request subscribed.
        """
        await s.commit()  # no transaction held while waiting
        handle = self.temporal.get_workflow_handle(row.id, result_type=ResponseOutcome)
        loop = asyncio.get_running_loop()
        poll_from = loop.time() + RESULT_POLL_AFTER.total_seconds()
        workflow_ended: asyncio.Future[None] | None = None
        current: Response | None = None
        output: list[dict[str, Any]] = []
        try:
            with self.notifier.subscribe(row.id, events=False) as wake:
                # A wake is the end's NOTIFY (or the listener dropping, when waiters poll until it is back).
                while workflow_ended is None or not workflow_ended.done():
                    timeout = self.notifier.wait_timeout()
                    if workflow_ended is None:
                        until_poll = max(0.0, poll_from - loop.time())
                        timeout = until_poll if timeout is None else min(timeout, until_poll)
                    woken: asyncio.Future[Any] = asyncio.ensure_future(wake.wait())
                    await asyncio.wait({woken} if workflow_ended is None else {woken, workflow_ended},
                                       timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                    woken.cancel()
                    if workflow_ended is not None and workflow_ended.done():
                        break
                    if workflow_ended is None and loop.time() >= poll_from:
                        workflow_ended = asyncio.ensure_future(self._result(handle))
                    wake.clear()
                    try:
                        # The row with its output, in one statement: an ended one is the answer as read.
                        async with autocommit(self.engine) as conn:
                            current, output = await db.response_with_output(conn, row.id) or (None, [])
                    except Exception as exc:
                        # The response is accepted and runs on: a database outage while waiting is waited out
                        # (the workflow's end is awaited beside), not answered as a failure of the request.
                        if outage(exc) is None:
                            raise
                        await s.rollback()
                        continue
                    if current is None or current.status in TERMINAL_STATUSES:
                        break
        finally:
            if workflow_ended is not None:
                workflow_ended.cancel()
        if current is None or current.status not in TERMINAL_STATUSES:
            current = await self.reconcile(s, row.id)
            output = await db.output_items(s, row.id)
        if current.status == ResponseStatus.FAILED and current.error:
            raise UpstreamError.from_failure(current.error, "The response failed.")
        return render_response(current, output)

    @staticmethod
    async def _result(handle: WorkflowHandle[Any, ResponseOutcome]) -> None:
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()

    @staticmethod
    async def get(s: AsyncSession, owner_id: str, response_id: str, *, to_read: bool = True) -> Response:
        """An owner's response; 404 for anyone else, and to read a store-false one (it can only be stopped)."""
        row = await db.get_response(s, response_id, owner_id)
        if row is None or (to_read and not db.is_stored(row)):
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return row

    async def cancel(self, s: AsyncSession, owner_id: str, response_id: str) -> Response:
        """Cancel an open response; a cancelled one is returned as is; a finished one is a 400."""
        row = await self.get(s, owner_id, response_id, to_read=False)
        if row.status == ResponseStatus.CANCELLED:
            return row
        if row.status in TERMINAL_STATUSES:
            raise InvalidRequest(f"Cannot cancel a response with status '{row.status}'.",
                                 param="response_id", code="response_not_cancellable")
        await s.commit()  # end the read before waiting on the workflow
        # The row ends first: its NOTIFY stops a running step at once (a local activity hears of a workflow cancel
        # only when its workflow task next reaches the server), and nothing a step finishes now is kept.
        if await move_status(s, response_id, ResponseStatus.CANCELLED, only_from=OPEN_STATUSES) is None:
            return await self.cancel(s, owner_id, response_id)  # it ended meanwhile: answer as for that end
        handle = self.temporal.get_workflow_handle(response_id, result_type=ResponseOutcome)
        try:
            await handle.cancel()
            with contextlib.suppress(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), timeout=self.settings.cancel_wait_seconds)
        except (TimeoutError, RPCError):
            # No worker took the cancel in time (or the workflow is gone): stop it the hard way.
            with contextlib.suppress(RPCError):
                await handle.terminate(reason="cancel requested; no worker completed it in time")
        return await self._end(s, response_id, ResponseStatus.CANCELLED)

    async def delete(self, s: AsyncSession, owner_id: str, response_id: str) -> None:
        """Delete a response; an open one's workflow is terminated first so nothing writes after."""
        row = await self.get(s, owner_id, response_id, to_read=False)
        if row.status not in TERMINAL_STATUSES:
            with contextlib.suppress(RPCError):
                await self.temporal.get_workflow_handle(response_id).terminate(reason="response deleted")
        await db.delete_response(s, response_id)

    async def reconcile(self, s: AsyncSession, response_id: str) -> Response:
        """If the row is open but its workflow has closed (or never started), mark it terminal."""
        row = await db.get_response(s, response_id)
        if row is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        if row.status in TERMINAL_STATUSES:
            return row
        await s.commit()  # end the read before asking Temporal
        try:
            desc = await self.temporal.get_workflow_handle(response_id).describe()
            status = _CLOSED_AS.get(desc.status) if desc.status is not None else None
            reason = f"the response's workflow ended as {desc.status.name if desc.status else 'unknown'}"
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                return row
            status, reason = ResponseStatus.FAILED, "the response's workflow was never started"
        if status is None:
            return row
        error = None if status == ResponseStatus.CANCELLED else {"status": 500, "message": reason,
                                                                  "code": "server_error"}
        return await self._end(s, response_id, status, error)

    @staticmethod
    async def _end(s: AsyncSession, response_id: str, status: ResponseStatus,
                   error: dict[str, Any] | None = None) -> Response:
        """Move an open response to a terminal status; the row as it now is (someone may have ended it first)."""
        fresh = await move_status(s, response_id, status, only_from=OPEN_STATUSES, error=error)
        if fresh is None:
            fresh = await db.get_response(s, response_id)
        assert fresh is not None
        return fresh

    async def reconcile_stale(self) -> int:
        """Reconcile every open response untouched for a while; returns how many were fixed."""
        fixed = 0
        async with self.sessions() as s:
            ids = await db.stale_open_responses(s, timedelta(seconds=self.settings.reconcile_min_age_seconds))
            for response_id in ids:
                with contextlib.suppress(NotFound):
                    if (await self.reconcile(s, response_id)).status in TERMINAL_STATUSES:
                        fixed += 1
        return fixed
