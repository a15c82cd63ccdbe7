"""The response workflow: executes the decisions of workflows.decide, one activity per step."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError
from temporalio.exceptions import TimeoutError as StepTimeout

with workflow.unsafe.imports_passed_through():
    from activities.compaction import CompactionActivities
    from activities.heartbeat import RESPONSE_ENDED
    from activities.mcp_tools import McpActivities
    from activities.model_call import ModelCallActivity
    from activities.response_state import ResponseStateActivities
    from activities.tool_call import ToolCallActivity
    from core import search_attributes as sa
    from core.contracts import (
        ContextCompactionInput,
        FinalizeInput,
        ListToolsInput,
        MarkInProgressInput,
        ModelCallInput,
        ModelTurn,
        ResponseOutcome,
        ResponseWorkflowInput,
        StepKind,
        StepPolicy,
        StepTrace,
        ToolCallInput,
        ToolResult,
        UpstreamFailure,
    )
    from core.ids import approved_call_id
    from core.status import ResponseStatus
    from workflows.decide import (
        CallModel,
        CompactContext,
        Finish,
        ListTools,
        LoopState,
        RunApproved,
        RunTools,
        decide,
    )
    from workflows.trace import Trace

_Step = TypeVar("_Step", ModelTurn, ToolResult)
_Input = TypeVar("_Input", ModelCallInput, ToolCallInput)
_START_IN_FIRST_CALL = "start-in-first-model-call"
# Model and tool steps run as local activities: a loop runs inside few workflow tasks, each step recorded as a
# marker instead of costing a server round trip. Histories from before keep their regular activities.
_LOCAL_STEPS = "steps-as-local-activities"
# After a step saw its response end (a cancel commits the row first), how long the workflow waits for the
# cancel request itself, which reaches it once its workflow task completes.
CANCEL_ARRIVAL = timedelta(seconds=30)
STATE_TIMEOUT = timedelta(seconds=30)
# The shortest timer: all it is for is to complete the workflow task (see _after_lost_tasks).
CHECKPOINT = timedelta(milliseconds=1)
STATE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))


def step_retry(p: StepPolicy) -> RetryPolicy:
    """A model or tool step's retries: exponential backoff within the policy's bounds (or the upstream's
    Retry-After), as many attempts as fit the step's time budget (a regular activity's schedule-to-close timeout;
    a local one ends them itself)."""
    return RetryPolicy(initial_interval=timedelta(seconds=p.retry_initial_seconds),
                       # Time bounds the attempts; this cap only stands for "unbounded" in a form local
                       # activities are known to back off with here (checked with 12 attempts, not with 0).
                       maximum_interval=timedelta(seconds=p.retry_max_seconds), maximum_attempts=10_000)


def model_budget(p: StepPolicy) -> timedelta:
    """All attempts of a model call together."""
    return timedelta(seconds=p.model_retry_budget_seconds)


def tool_budget(p: StepPolicy) -> timedelta:
    """All attempts of a tool step together."""
    return timedelta(seconds=p.tool_retry_budget_seconds)


def _set_status(status: ResponseStatus) -> None:
    """Keep AgentStatus current so the Temporal UI can filter on it (only where it was set at start)."""
    if workflow.info().typed_search_attributes.get(sa.AGENT_STATUS) is not None:
        workflow.upsert_search_attributes([sa.AGENT_STATUS.value_set(status.value)])


def failure_of(err: FailureError) -> UpstreamFailure:
    """What to show the client for an activity that failed for good."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, StepTimeout) and isinstance(cause.cause, ApplicationError):
        cause = cause.cause  # the budget ran out while retrying: the client sees the last attempt's error
    if isinstance(cause, ApplicationError) and cause.type == "UpstreamError" and cause.details:
        return UpstreamFailure.model_validate(cause.details[0])
    if isinstance(cause, StepTimeout):
        return UpstreamFailure(status=504, message="the model call timed out", code="timeout")
    return UpstreamFailure(status=500, message=str(cause or err), code="server_error")


@workflow.defn(name="ResponseWorkflow")
class ResponseWorkflow:
    """One response: model call → parallel server-side tools → model call → … → terminal status.

    The Temporal UI shows where it is as the workflow's current details (`model call 3 · waiting for tool get_weather`)
    and the `steps` query answers with its steps so far; neither writes anything to the history.
    """

    @workflow.init
    def __init__(self, inp: ResponseWorkflowInput) -> None:
        self._trace = Trace(inp.response_id)

    @workflow.query(description="The response's steps so far (ids, names, states, workflow times) and its current "
                                "details; the codec endpoint shows each step's content.")
    def steps(self) -> StepTrace:
        """The step trace, built from what the workflow knows: no I/O."""
        return self._trace.snapshot()

    def _show(self) -> None:
        """Make the trace's current line the workflow's current details (UI, CLI); records nothing in history."""
        workflow.set_current_details(self._trace.details)

    def _patched(self, patch_id: str) -> bool:
        """Whether this run takes a change made since the type's first version (`workflow.patched`)."""
        return workflow.patched(patch_id)

    @workflow.run
    async def run(self, inp: ResponseWorkflowInput) -> ResponseOutcome:
        """Run the loop and leave the response row in a terminal state whatever happens."""
        self._show()
        try:
            # The first model call marks the response in_progress itself: a separate local activity cost a
            # workflow activation and a database session per response. Histories from before keep replaying.
            start_in_first_call = self._patched(_START_IN_FIRST_CALL)
            if not start_in_first_call:
                await workflow.execute_local_activity_method(
                    ResponseStateActivities.mark_in_progress, MarkInProgressInput(response_id=inp.response_id),
                    start_to_close_timeout=STATE_TIMEOUT, retry_policy=STATE_RETRY)
            _set_status(ResponseStatus.IN_PROGRESS)
            status, reason, row_ended = await self._loop(inp, start_in_first_call)
            await self._finalize(inp, status, incomplete_reason=reason, row_ended=row_ended)
            return ResponseOutcome(response_id=inp.response_id, status=status)
        except asyncio.CancelledError:
            await self._finalize(inp, ResponseStatus.CANCELLED)
            raise
        except FailureError as err:  # a step's failure: a local activity's arrives unwrapped, not as ActivityError
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(cause, ApplicationError) and cause.type == RESPONSE_ENDED:
                return await self._ended_under_us(inp)
            if isinstance(cause, CancelledError):
                # Cancelling the workflow cancels the in-flight activity; this is how it shows up here.
                await self._finalize(inp, ResponseStatus.CANCELLED)
                raise asyncio.CancelledError() from err
            failure = failure_of(err)
            await self._finalize(inp, ResponseStatus.FAILED, error=failure)
            raise ApplicationError(failure.message, failure.model_dump(), type="ResponseFailed",
                                   non_retryable=True) from err

    async def _ended_under_us(self, inp: ResponseWorkflowInput) -> ResponseOutcome:
        """A step found its response already ended: a cancel (the API ends the row, then cancels the workflow);
        wait for the cancel to arrive so the workflow ends cancelled too. Anything else ended the row: keep it."""
        try:
            await workflow.wait_condition(lambda: False, timeout=CANCEL_ARRIVAL)
        except asyncio.CancelledError:
            await self._finalize(inp, ResponseStatus.CANCELLED)  # a no-op: the row ended first
            raise
        except TimeoutError:  # no cancel came: something else ended the row, which stays as it is
            self._trace.finish(ResponseStatus.CANCELLED, workflow.now(), reason="the response ended outside the loop")
            self._show()
        return ResponseOutcome(response_id=inp.response_id, status=ResponseStatus.CANCELLED)

    async def _loop(self, inp: ResponseWorkflowInput,
                    start_in_first_call: bool) -> tuple[ResponseStatus, str | None, bool]:
        """Run the steps; how the response ends, and whether its last model call already ended the row."""
        state = LoopState(lists_due=list(inp.mcp_list), approved=list(inp.approved))
        while True:
            decision = decide(state, max_model_calls=inp.policy.max_model_calls, max_tool_calls=inp.max_tool_calls,
                              compact_threshold=inp.compact_threshold)
            if isinstance(decision, Finish):
                if state.turns:
                    self._trace.hand_back([(c.call_id, c.name) for c in state.turns[-1].tool_calls
                                           if not c.server_side])
                # A model call that ended the row says so in its recorded result, so replays decide the same.
                row_ended = bool(state.turns) and state.turns[-1].ended_response \
                    and decision.status == ResponseStatus.COMPLETED
                return decision.status, decision.incomplete_reason, row_ended
            if isinstance(decision, CallModel):
                call = ModelCallInput(response_id=inp.response_id, seq=state.next_seq, turn=len(state.turns) + 1,
                                      output_index=state.output_count,
                                      start_response=start_in_first_call and state.next_seq == 1)
                self._begin(call.seq, "model_call", inp.model, turn=call.turn)
                turn = await self._call_model(inp, call)
                self._end(call.seq, item_ids=[c.call_id for c in turn.tool_calls])
                state.turns.append(turn)
            elif isinstance(decision, RunTools):
                seq = state.next_seq
                for i, c in enumerate(decision.calls):
                    self._begin(seq + i, "tool_call", c.name, item_ids=[c.call_id])
                results = await asyncio.gather(*(
                    self._tool_step(inp, ToolCallInput(response_id=inp.response_id, seq=seq + i, call_id=c.call_id,
                                                       name=c.name, output_index=c.output_index))
                    for i, c in enumerate(decision.calls)))
                state.tool_results.extend(results)
            elif isinstance(decision, ListTools):
                p = inp.policy
                self._begin(state.next_seq, "list_tools", decision.label)
                await workflow.execute_activity_method(
                    McpActivities.list_tools,
                    ListToolsInput(response_id=inp.response_id, seq=state.next_seq, server_label=decision.label,
                                   output_index=state.output_count, start_response=state.next_seq == 1),
                    start_to_close_timeout=timedelta(seconds=p.tool_call_timeout_seconds),
                    schedule_to_close_timeout=tool_budget(p),
                    heartbeat_timeout=timedelta(seconds=p.heartbeat_timeout_seconds),
                    retry_policy=step_retry(p), summary=f"list tools · {decision.label}")
                self._end(state.next_seq)
                state.listed += 1
            elif isinstance(decision, RunApproved):
                seq, first, starts = state.next_seq, state.output_count, start_in_first_call and state.next_seq == 1
                for i, approval in enumerate(decision.approval_request_ids):
                    self._begin(seq + i, "tool_call", "approved call",
                                item_ids=[approved_call_id(inp.response_id, approval)])
                results = await asyncio.gather(*(
                    self._tool_step(inp, ToolCallInput(response_id=inp.response_id, seq=seq + i,
                                                       call_id=approved_call_id(inp.response_id, approval),
                                                       name="approved call", output_index=first + i,
                                                       approval_request_id=approval,
                                                       start_response=starts and i == 0))
                    for i, approval in enumerate(decision.approval_request_ids)))
                state.tool_results.extend(results)
                state.approved_run = True
            elif isinstance(decision, CompactContext):
                p = inp.policy
                self._begin(state.next_seq, "compaction", inp.model)
                await workflow.execute_activity_method(
                    CompactionActivities.compact_context,
                    ContextCompactionInput(response_id=inp.response_id, seq=state.next_seq,
                                           output_index=state.output_count),
                    start_to_close_timeout=timedelta(seconds=p.model_call_timeout_seconds),
                    schedule_to_close_timeout=model_budget(p),
                    heartbeat_timeout=timedelta(seconds=p.heartbeat_timeout_seconds),
                    retry_policy=step_retry(p), summary=f"compaction · {inp.model}")
                self._end(state.next_seq)
                state.compacted_at.append(len(state.turns))

    def _begin(self, seq: int, kind: StepKind, name: str, *, turn: int | None = None,
               item_ids: list[str] | None = None) -> None:
        self._trace.begin(seq, kind, name, workflow.now(), turn=turn, item_ids=item_ids)
        self._show()

    def _end(self, seq: int, *, item_ids: list[str] | None = None, ok: bool | None = None) -> None:
        self._trace.end(seq, workflow.now(), item_ids=item_ids, ok=ok)
        self._show()

    async def _tool_step(self, inp: ResponseWorkflowInput, call: ToolCallInput) -> ToolResult:
        """One tool step of a parallel turn; the details name the tools still running as each one ends."""
        result = await self._call_tool(inp, call)
        self._end(call.seq, ok=result.ok)
        return result

    async def _after_lost_tasks(self, step: Callable[[int], Awaitable[_Step]]) -> _Step:
        """Run a local step (given the attempts of it the workflow knows of); when it meets the traces of a workflow
        task lost with its worker, complete the task first (a 1 ms timer).

        A lost task is retried as the same task, and Temporal lengthens a retried task's timeout as its attempts
        pile up; a loop of local steps records progress only when its task completes, so under repeated kills a
        response could wait minutes on a task a dead worker held. Completing the task resets the count.
        """
        known = 0
        while (result := await step(known)).deferred is not None:
            known = result.deferred
            await workflow.sleep(CHECKPOINT, summary="record progress after a lost worker")
        if result.replayed:
            await workflow.sleep(CHECKPOINT, summary="record progress after a lost worker")
        return result

    async def _call_model(self, inp: ResponseWorkflowInput, call: ModelCallInput) -> ModelTurn:
        p = inp.policy
        return await self._run_step(ModelCallActivity.call_model, call, p, timeout_seconds=p.model_call_timeout_seconds,
                                    budget_seconds=p.model_retry_budget_seconds,
                                    summary=f"model call {call.turn} · {inp.model}")

    async def _call_tool(self, inp: ResponseWorkflowInput, call: ToolCallInput) -> ToolResult:
        p = inp.policy
        return await self._run_step(ToolCallActivity.call_tool, call, p, timeout_seconds=p.tool_call_timeout_seconds,
                                    budget_seconds=p.tool_retry_budget_seconds, summary=f"tool {call.name}")

    async def _run_step(self, method: Callable[[Any, _Input], Awaitable[_Step]], call: _Input, p: StepPolicy, *,
                        timeout_seconds: float, budget_seconds: float, summary: str) -> _Step:
        """A model or tool step: a local activity, or a regular one in a history from before local steps."""
        timeout = timedelta(seconds=timeout_seconds)
        if self._patched(_LOCAL_STEPS):
            # No schedule-to-close: on a local activity it turns off the retries' backoff (SDK 1.35); the step
            # ends its attempts itself once the budget is spent (activities.heartbeat.StepGuard.final_once_spent).
            budget = p.budget(budget_seconds)
            return await self._after_lost_tasks(lambda known: workflow.execute_local_activity_method(
                method, call.model_copy(update={"budget": budget, "attempts_known": known}),
                start_to_close_timeout=timeout, retry_policy=step_retry(p), summary=summary))
        return await workflow.execute_activity_method(
            method, call, start_to_close_timeout=timeout, schedule_to_close_timeout=timedelta(seconds=budget_seconds),
            heartbeat_timeout=timedelta(seconds=p.heartbeat_timeout_seconds), retry_policy=step_retry(p),
            summary=summary)

    async def _finalize(self, inp: ResponseWorkflowInput, status: ResponseStatus, *,
                        incomplete_reason: str | None = None, error: UpstreamFailure | None = None,
                        row_ended: bool = False) -> None:
        _set_status(status)
        reason = incomplete_reason or (error.message[:200] if error else None)
        self._trace.finish(status, workflow.now(), reason=reason)
        self._show()
        if row_ended:
            return  # nothing left to write: a local activity (and its transaction, its marker) fewer per response
        # Status writes are short DB updates: local activities spare two server round trips per response.
        await workflow.execute_local_activity_method(
            ResponseStateActivities.finalize,
            FinalizeInput(response_id=inp.response_id, status=status, incomplete_reason=incomplete_reason,
                          error=error),
            start_to_close_timeout=STATE_TIMEOUT, retry_policy=STATE_RETRY,
        )


@workflow.defn(name="ResponseWorkflowV2")
class ResponseWorkflowV2(ResponseWorkflow):
    """The loop with every change ResponseWorkflow patched in, as a type of its own: what new responses run.

    Each `workflow.patched` costs every run a marker and an upsert of the TemporalChangeVersion search attribute
    (a visibility write), about 14 % of the Temporal server's CPU per response here. ResponseWorkflow stays registered
    so that responses started before the deploy finish on it (tests/test_replay.py replays its histories).
    """

    @workflow.init
    def __init__(self, inp: ResponseWorkflowInput) -> None:
        super().__init__(inp)

    @workflow.query(description="The response's steps so far (ids, names, states, workflow times) and its current "
                                "details; the codec endpoint shows each step's content.")
    def steps(self) -> StepTrace:
        """The step trace, built from what the workflow knows: no I/O."""
        return super().steps()

    @workflow.run
    async def run(self, inp: ResponseWorkflowInput) -> ResponseOutcome:
        """Run the loop and leave the response row in a terminal state whatever happens."""
        return await super().run(inp)

    def _patched(self, patch_id: str) -> bool:
        return True
