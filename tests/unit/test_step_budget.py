"""A local step's retry budget (activities.heartbeat.StepGuard): a failure judged within the budget promises the
next attempt, which then runs even if scheduling lands it just past the budget; an attempt nothing promised (one
after a timeout) is refused once the budget is spent."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.heartbeat import StepGuard
from core.contracts import StepBudget

BUDGET = StepBudget(seconds=2.0, initial_backoff=0.1, max_backoff=0.4)


def _attempt(n: int, *, seconds_in: float) -> ActivityEnvironment:
    """An environment for attempt `n` of a local activity, `seconds_in` after its first was scheduled."""
    env = ActivityEnvironment()
    scheduled = datetime.now(UTC) - timedelta(seconds=seconds_in)
    env.info = dataclasses.replace(env.info, attempt=n, activity_id="1", is_local=True,
                                   workflow_run_id="run-1", scheduled_time=scheduled)
    return env


def _guard() -> StepGuard:
    return StepGuard(notifier=None, sessions=None)  # type: ignore[arg-type]  # neither is used by the budget


def test_a_promised_attempt_runs_even_when_it_starts_just_past_the_budget() -> None:
    guard, failure = _guard(), ApplicationError("upstream 503", type="UpstreamError")
    # Attempt 1 fails 1.8 s in: with a 0.1 s backoff the next attempt fits the 2 s budget, so it stays retryable.
    assert not _attempt(1, seconds_in=1.8).run(guard.final_once_spent, failure, BUDGET).non_retryable
    _attempt(2, seconds_in=2.1).run(guard.refuse_once_spent, BUDGET, "the model call")  # delayed, not refused
    # Its own failure is then the last one: the client sees the upstream's error, not a budget timeout.
    assert _attempt(2, seconds_in=2.2).run(guard.final_once_spent, failure, BUDGET).non_retryable


def test_an_attempt_nothing_promised_is_refused_once_the_budget_is_spent() -> None:
    guard = _guard()
    with pytest.raises(ApplicationError, match="did not succeed within its retry budget of 2s") as refused:
        _attempt(2, seconds_in=2.1).run(guard.refuse_once_spent, BUDGET, "the model call")
    assert refused.value.non_retryable
    _attempt(2, seconds_in=1.5).run(guard.refuse_once_spent, BUDGET, "the model call")  # within: runs
