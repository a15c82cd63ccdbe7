"""The compaction workflow: one durable model call that summarizes a conversation window."""

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.compaction import CompactionActivities
    from core.contracts import CompactionFailure, CompactionInput, CompactionWorkflowInput
    from workflows.response import STATE_RETRY, STATE_TIMEOUT, failure_of, model_budget, step_retry


@workflow.defn(name="CompactionWorkflow")
class CompactionWorkflow:
    """Summarize; on a failure that retries cannot fix, mark the compaction failed and fail."""

    @workflow.run
    async def run(self, inp: CompactionWorkflowInput) -> None:
        """Run the summarizing call like any model step: heartbeated, retried, cancellable."""
        p = inp.policy
        try:
            await workflow.execute_activity_method(
                CompactionActivities.summarize, CompactionInput(compaction_id=inp.compaction_id),
                start_to_close_timeout=timedelta(seconds=p.model_call_timeout_seconds),
                schedule_to_close_timeout=model_budget(p),
                heartbeat_timeout=timedelta(seconds=p.heartbeat_timeout_seconds),
                retry_policy=step_retry(p), summary=f"compaction · {inp.model}")
        except ActivityError as err:
            failure = failure_of(err)
            await workflow.execute_local_activity_method(
                CompactionActivities.fail, CompactionFailure(compaction_id=inp.compaction_id, error=failure),
                start_to_close_timeout=STATE_TIMEOUT, retry_policy=STATE_RETRY)
            raise ApplicationError(failure.message, failure.model_dump(), type="CompactionFailed",
                                   non_retryable=True) from err
