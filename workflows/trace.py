"""The response's steps as the workflow runs them, and the one line that tells an operator where it is.

Pure: the workflow feeds it the times (workflow.now()) and shows `details` as the workflow's current details in the
Temporal UI; the `steps` query answers with `snapshot()`.
"""

from datetime import datetime

from core.contracts import StepKind, StepState, StepTrace, TraceStep
from core.status import ResponseStatus

# Approval requests are `mcpr_…` items (core.stream_events); the other calls a response hands back are the client's.
_APPROVAL_PREFIX = "mcpr_"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class Trace:
    """The steps so far, in the order the workflow scheduled them, and what the response is doing now."""

    def __init__(self, response_id: str) -> None:
        self.response_id = response_id
        self.steps: list[TraceStep] = []
        self._ended: str | None = None  # the terminal line, once the loop has ended
        self._handed_back: list[str] = []  # what the last turn left to the client (calls, approvals)

    def begin(self, seq: int, kind: StepKind, name: str, now: datetime, *, turn: int | None = None,
              item_ids: list[str] | None = None) -> None:
        """A step the workflow is about to run."""
        self.steps.append(TraceStep(seq=seq, kind=kind, name=name, status="running", turn=turn, started_at=now,
                                    item_ids=item_ids or []))

    def end(self, seq: int, now: datetime, *, item_ids: list[str] | None = None, ok: bool | None = None) -> None:
        """A step that completed (a tool's error answer completes its step too: `ok` tells)."""
        for step in self.steps:
            if step.seq == seq and step.status == "running":
                step.status, step.ended_at, step.ok = "completed", now, ok
                if item_ids is not None:
                    step.item_ids = item_ids

    def hand_back(self, calls: list[tuple[str, str]]) -> None:
        """The (call id, name) of the calls the last model turn left to the client: function calls, approvals."""
        self._handed_back = [f"approval of {name}" if call_id.startswith(_APPROVAL_PREFIX) else name
                             for call_id, name in calls]

    def finish(self, status: ResponseStatus, now: datetime, *, reason: str | None = None) -> None:
        """The response ended with `status`; steps still running end as failed or cancelled."""
        left: StepState = "cancelled" if status == ResponseStatus.CANCELLED else "failed"
        for step in self.steps:
            if step.status == "running":
                step.status, step.ended_at = left, now
        models = sum(1 for s in self.steps if s.kind == "model_call")
        tools = sum(1 for s in self.steps if s.kind == "tool_call")
        line = f"{status.value} · {_plural(models, 'model call')}, {_plural(tools, 'tool call')}"
        if reason:
            line += f" · {reason}"
        if status == ResponseStatus.COMPLETED and self._handed_back:
            line += " · waiting for the client: " + ", ".join(self._handed_back)
        self._ended = line

    @property
    def details(self) -> str:
        """What the response is doing now, e.g. `model call 3 · waiting for tool get_weather`."""
        if self._ended is not None:
            return self._ended
        running = [s for s in self.steps if s.status == "running"]
        if not running:
            return "queued" if not self.steps else "deciding the next step"
        first = running[0]
        if first.kind == "model_call":
            return f"model call {first.turn} · {first.name}"
        if first.kind == "list_tools":
            return f"listing the tools of {first.name}"
        last_turn = max((s.turn or 0 for s in self.steps if s.kind == "model_call"), default=0)
        if first.kind == "compaction":
            return f"compacting the context after model call {last_turn}"
        if not last_turn:  # approved calls run before the first model call; their tools' names are the step's to find
            return f"running {_plural(len(running), 'approved call')}"
        names = ", ".join(s.name for s in running)
        return f"model call {last_turn} · waiting for {'tool' if len(running) == 1 else 'tools'} {names}"

    def snapshot(self) -> StepTrace:
        """The `steps` query's answer (a copy: the query must not hand out the workflow's own state)."""
        return StepTrace(response_id=self.response_id, details=self.details,
                         steps=[s.model_copy() for s in self.steps])
