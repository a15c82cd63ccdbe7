"""Typed inputs and results passed through Temporal. Kept small: big payloads live in PostgreSQL."""

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from core.status import ResponseStatus
from core.usage import Usage


class StepPolicy(BaseModel):
    """Caps, timeouts and retry bounds of a response's steps.

    Part of Settings (`AGENTRUNNER_STEPS__<FIELD>`) and handed whole to each workflow, which cannot read settings.
    """

    max_model_calls: int = Field(16, ge=1, description="model calls per response before it ends incomplete")
    model_call_timeout_seconds: float = Field(600.0, gt=0, description="one model call attempt's limit")
    model_retry_budget_seconds: float = Field(
        600.0, gt=0, description="how long one model call is retried (retryable errors, timeouts), all attempts and "
                                 "their backoff together, before the response fails")
    tool_call_timeout_seconds: float = Field(600.0, gt=0, description="one tool call attempt's limit")
    tool_retry_budget_seconds: float = Field(
        600.0, gt=0, description="how long one tool step is retried (a worker that died, an MCP server that could "
                                 "not list its tools); a tool's own error is the model's answer, not a retry")
    heartbeat_timeout_seconds: float = Field(
        5.0, gt=0, description="how fast a dead worker's step moves on (a regular activity's heartbeat timeout, "
                               "a local one's workflow task timeout)")
    retry_initial_seconds: float = Field(1.0, gt=0, description="first retry delay of a step, doubling after")
    retry_max_seconds: float = Field(30.0, gt=0, description="longest retry delay of a step")

    def budget(self, seconds: float) -> "StepBudget":
        """A local step's budget of this many seconds, with this policy's backoff."""
        return StepBudget(seconds=seconds, initial_backoff=self.retry_initial_seconds,
                          max_backoff=self.retry_max_seconds)


class StepBudget(BaseModel):
    """How long a local step's attempts may go on, and the backoff between them (the step's RetryPolicy)."""

    seconds: float
    initial_backoff: float
    max_backoff: float

    def backoff(self, attempt: int) -> float:
        """The wait before the attempt after `attempt` (exponential, as Temporal's default coefficient of 2)."""
        return float(min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1)))


class ResponseWorkflowInput(BaseModel):
    """Starts one response's agent loop."""

    response_id: str
    model: str
    max_tool_calls: int | None = None
    compact_threshold: int | None = None  # context_management: compact when a turn's context reaches it
    policy: StepPolicy = StepPolicy()
    mcp_list: list[str] = []  # remote MCP servers whose tools are listed before the first model call
    approved: list[str] = []  # approval requests whose calls run then (the request's `_approved`)


class ToolCallRef(BaseModel):
    """A tool call the model asked for; `server_side` when a registered tool runs it."""

    call_id: str  # the function_call's call_id, or the mcp_call item's id for a server-side call
    name: str
    server_side: bool
    output_index: int = 0


class LocalStepResult(BaseModel):
    """How a local step met a workflow task that was lost with its worker (both unset otherwise); the workflow then
    completes its task before going on (workflows.response.ResponseWorkflow._after_lost_tasks)."""

    replayed: bool = False  # the stored result of a step completed before (in a lost task, usually)
    deferred: int | None = None  # not run: it had this many attempts, some in lost tasks; call again knowing them


class ModelCallInput(BaseModel):
    """One model call of the loop, identified by its step sequence number."""

    response_id: str
    seq: int
    turn: int
    output_index: int = 0  # where this step's first output item goes in the response's output
    start_response: bool = False  # the first call also moves the response from queued to in_progress
    budget: StepBudget | None = None  # a local activity's attempts end when it is spent
    attempts_known: int = 0  # attempts the workflow was told of by a deferral (LocalStepResult.deferred)


class ModelTurn(LocalStepResult):
    """What a model call produced, as much as the loop needs to decide what comes next."""

    seq: int
    response_id: str | None = None  # so a decoded history finds the step's content (None in older histories)
    tool_calls: list[ToolCallRef] = []
    finish_reason: str | None = None
    output_items: int = 0
    usage: Usage = Usage()
    ended_response: bool = False  # this call moved the response to completed, in its step's own commit

    @property
    def completes_response(self) -> bool:
        """A turn without server-side calls is the response's last, and completes it: its calls (if any) go back to
        the client; without calls, unless it stopped at the output limit (then the response is incomplete).
        workflows.decide ends the loop on it; the model call ends the row with the step's own commit."""
        if any(c.server_side for c in self.tool_calls):
            return False
        return bool(self.tool_calls) or self.finish_reason != "length"


class ToolCallInput(BaseModel):
    """One server-side tool call, identified by its step sequence number.

    With `approval_request_id` it is an approved call: its `mcp_call` item is made by the step (`call_id` is that
    item's id), not by a model call.
    """

    response_id: str
    seq: int
    call_id: str
    name: str
    output_index: int = 0
    approval_request_id: str | None = None
    start_response: bool = False  # the response's first step also moves it from queued to in_progress
    budget: StepBudget | None = None  # a local activity's attempts end when it is spent
    attempts_known: int = 0  # attempts the workflow was told of by a deferral (LocalStepResult.deferred)


class ListToolsInput(BaseModel):
    """Lists one remote MCP server's tools into an `mcp_list_tools` item, identified by its step sequence number."""

    response_id: str
    seq: int
    server_label: str
    output_index: int
    start_response: bool = False  # the response's first step also moves it from queued to in_progress


class ToolResult(LocalStepResult):
    """Outcome of a server-side tool call; the output itself is stored as an item."""

    seq: int
    response_id: str | None = None  # so a decoded history finds the step's content (None in older histories)
    call_id: str
    ok: bool


class MarkInProgressInput(BaseModel):
    """Moves a queued response to in_progress."""

    response_id: str


class UpstreamFailure(BaseModel):
    """An upstream's error, carried in ApplicationError details so the API can show it as it was."""

    status: int
    message: str
    type: str | None = None
    code: str | None = None
    param: str | None = None

    @classmethod
    def from_body(cls, status: int, text: str, reason: str = "") -> "UpstreamFailure":
        """The upstream's error as it reported it, unwrapping an OpenAI-shaped body."""
        message, type_, code, param = text[:2000] or reason, None, None, None
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            err = body.get("error", body)
            if isinstance(err, dict):
                message = str(err.get("message") or message)
                type_, code, param = err.get("type"), err.get("code"), err.get("param")
            elif isinstance(err, str):
                message = err
        return cls(status=status, message=message, type=type_, code=None if code is None else str(code),
                   param=param)


class FinalizeInput(BaseModel):
    """Writes a response's terminal status (only if it is not terminal already)."""

    response_id: str
    status: ResponseStatus
    incomplete_reason: str | None = None
    error: UpstreamFailure | None = None


class ResponseOutcome(BaseModel):
    """What the workflow returns."""

    response_id: str
    status: ResponseStatus


class CompactionWorkflowInput(BaseModel):
    """Summarizes one stored conversation window (a `compactions` row)."""

    compaction_id: str
    model: str
    policy: StepPolicy = StepPolicy()


class CompactionInput(BaseModel):
    """The summarizing model call of one compaction."""

    compaction_id: str


class CompactionFailure(BaseModel):
    """Marks a compaction failed, with what the client is shown."""

    compaction_id: str
    error: UpstreamFailure


class ContextCompactionInput(BaseModel):
    """A compaction step inside a response's loop, identified by its step sequence number."""

    response_id: str
    seq: int
    output_index: int


StepKind = Literal["model_call", "tool_call", "compaction", "list_tools"]
StepState = Literal["running", "completed", "failed", "cancelled"]


class TraceStep(BaseModel):
    """One step as the workflow ran it. Ids and names only: what it was given and gave is in PostgreSQL (the steps
    API with `include=step_details`, the codec endpoint)."""

    seq: int
    kind: StepKind
    name: str  # the model (a model call, a compaction), the tool, or the MCP server whose tools are listed
    status: StepState
    turn: int | None = None  # a model call's number
    started_at: datetime  # workflow time (workflow.now()) when the workflow scheduled it
    ended_at: datetime | None = None  # workflow time when the workflow learned of its end
    item_ids: list[str] = []  # a tool call: its call's item id; a model call: the calls it asked for
    ok: bool | None = None  # a tool call: whether the tool answered without an error


class StepTrace(BaseModel):
    """What the response workflow's `steps` query answers: its steps so far and its current details."""

    response_id: str
    details: str
    steps: list[TraceStep] = []
