"""A running step's link to the world: a regular activity heartbeats (cancellation and dead workers are noticed
through Temporal); a local one watches its response row, woken by NOTIFY, and stops when it ends; and a local
step's retry budget, which it enforces itself."""

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.lifecycle import move_status
from activities.notifier import EventNotifier
from activities.upstream import upstream_error
from core.contracts import StepBudget, UpstreamFailure
from core.status import TERMINAL_STATUSES, ResponseStatus
from db import responses as db
from db.tables import Response

T = TypeVar("T")

# Retry promises a worker remembers (StepGuard.promised): far more than local steps in backoff at once.
_PROMISES_KEPT = 10_000
# The error type a step raises when its response ended (a cancel, usually) before or while it ran.
RESPONSE_ENDED = "ResponseEnded"


def response_ended(response_id: str, status: str | None) -> ApplicationError:
    """The step's non-retryable failure because its response is already over."""
    return ApplicationError(f"response {response_id} is {status or 'deleted'}; its step stopped",
                            type=RESPONSE_ENDED, non_retryable=True)


def _elapsed() -> float:
    """Seconds since this step's first attempt was scheduled. A step re-run after its worker died is scheduled
    afresh: a lost worker does not spend the upstream's budget."""
    return (datetime.now(UTC) - activity.info().scheduled_time).total_seconds()


async def open_step(session: AsyncSession, response_id: str, seq: int, *,
                    start_response: bool) -> tuple[Response, None] | tuple[None, dict[str, Any]]:
    """A local step's first reads, staged on the caller's transaction: (the open response, None), moved to
    in_progress by its first step; or (None, the stored result) for a replay after the response ended. A response
    that is gone or ended, with nothing stored for this step, is `response_ended`."""
    moved = await move_status(session, response_id, ResponseStatus.IN_PROGRESS, only_from=(ResponseStatus.QUEUED,),
                              commit=False) if start_response else None
    response = moved or await db.get_response(session, response_id)
    if response is not None and response.status not in TERMINAL_STATUSES:
        return response, None
    done = await db.completed_step_result(session, response_id, seq) if response else None
    if done is None:
        raise response_ended(response_id, response.status if response else None)
    return None, done


def lost_attempts(attempt: int, known: int) -> int | None:
    """The attempts a local step had before this one (numbered `attempt` on its row) when some were made in workflow
    tasks lost with their worker that the workflow was not told of: it should complete its task before the step
    runs again. None otherwise (a first attempt, a retry after a failure in this task, a regular activity)."""
    info = activity.info()
    before = attempt - 1
    return before if info.is_local and before > known + info.attempt - 1 else None


async def heartbeating(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro`, heartbeating meanwhile; a cancelled activity aborts it (closing its HTTP request)."""
    info = activity.info()
    timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 10.0
    task = asyncio.ensure_future(coro)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=max(timeout / 4, 0.05))
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        await _abort(task)


@dataclass
class StepGuard:
    """Runs a step's I/O so that the response's end reaches it within moments, whatever kind of activity it is."""

    notifier: EventNotifier
    sessions: async_sessionmaker[AsyncSession]
    # Local attempts (workflow run, activity, attempt) that a failure judged within its budget promised: they run
    # when they start, even if a scheduling delay lands them just past it. A local activity retries in the same
    # process, so this memory is where its next attempt looks; bounded, as only pending retries matter.
    promised: OrderedDict[tuple[str, str, int], None] = field(default_factory=OrderedDict)

    def final_once_spent(self, err: ApplicationError, budget: StepBudget | None) -> ApplicationError:
        """A retryable failure as the step's last when the next attempt would start after its budget (Temporal
        bounds a regular activity's retries by its schedule-to-close timeout; a local one's are bounded here)."""
        if err.non_retryable or budget is None:
            return err
        info = activity.info()
        wait = err.next_retry_delay.total_seconds() if err.next_retry_delay else budget.backoff(info.attempt)
        if _elapsed() + wait >= budget.seconds:
            return ApplicationError(err.message, *err.details, type=err.type, non_retryable=True)
        self.promised[(info.workflow_run_id or "", info.activity_id, info.attempt + 1)] = None
        if len(self.promised) > _PROMISES_KEPT:
            self.promised.popitem(last=False)
        return err

    def refuse_once_spent(self, budget: StepBudget | None, step: str) -> None:
        """Before a retry (after a timeout, say, which is not a failure of ours to make final): fail for good once
        the step's budget has run out, unless the failure before promised this attempt."""
        info = activity.info()
        promise = (info.workflow_run_id or "", info.activity_id, info.attempt)
        if promise in self.promised:
            del self.promised[promise]
            return
        if budget is not None and info.attempt > 1 and _elapsed() >= budget.seconds:
            raise upstream_error(UpstreamFailure(status=504, message=f"{step} did not succeed within its retry "
                                                                     f"budget of {budget.seconds:g}s", code="timeout"),
                                 retryable=False)

    async def run(self, response_id: str, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro`; a local activity whose response ends meanwhile aborts it and raises `response_ended`.

        A local activity cannot heartbeat and hears of a workflow cancel only when its workflow task next reaches
        the server, seconds later; the cancel commits the row's terminal status first, whose NOTIFY is immediate.
        """
        if not activity.info().is_local:
            return await heartbeating(coro)
        task = asyncio.ensure_future(coro)
        try:
            with self.notifier.subscribe(response_id, events=False) as wake:
                while True:
                    woken = asyncio.ensure_future(wake.wait())
                    await asyncio.wait({task, woken}, timeout=self.notifier.wait_timeout(),
                                       return_when=asyncio.FIRST_COMPLETED)
                    woken.cancel()
                    if task.done():
                        return task.result()
                    wake.clear()
                    async with self.sessions() as s:
                        row = await db.get_response(s, response_id)
                    if row is None or row.status in TERMINAL_STATUSES:
                        raise response_ended(response_id, row.status if row else None)
        finally:
            await _abort(task)


async def _abort(task: "asyncio.Future[Any]") -> None:
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
