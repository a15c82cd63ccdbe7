"""Typed inputs and results passed through Temporal. Kept small: big payloads live in PostgreSQL."""

import json
from typing import Literal

from pydantic import BaseModel

TerminalStatus = Literal["completed", "failed", "cancelled", "incomplete"]


class StepPolicy(BaseModel):
    """Timeouts and retry bounds for the loop's activities (from Settings; workflows cannot read them)."""

    model_call_timeout_seconds: float = 900.0
    heartbeat_timeout_seconds: float = 5.0
    model_max_attempts: int = 6
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 30.0
    tool_call_timeout_seconds: float = 900.0
    tool_max_attempts: int = 5


class ResponseWorkflowInput(BaseModel):
    """Starts one response's agent loop."""

    response_id: str
    model: str
    max_tool_calls: int | None = None
    max_model_calls: int = 16
    policy: StepPolicy = StepPolicy()


class ToolCallRef(BaseModel):
    """A tool call the model asked for; `server_side` when a registered tool runs it."""

    call_id: str  # the function_call's call_id, or the mcp_call item's id for a server-side call
    name: str
    server_side: bool
    output_index: int = 0


class ModelCallInput(BaseModel):
    """One model call of the loop, identified by its step sequence number."""

    response_id: str
    seq: int
    turn: int
    output_index: int = 0  # where this step's first output item goes in the response's output
    start_response: bool = False  # the first call also moves the response from queued to in_progress


class ModelTurn(BaseModel):
    """What a model call produced, as much as the loop needs to decide what comes next."""

    seq: int
    tool_calls: list[ToolCallRef] = []
    finish_reason: str | None = None
    output_items: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class ToolCallInput(BaseModel):
    """One server-side tool call, identified by its step sequence number."""

    response_id: str
    seq: int
    call_id: str
    name: str
    output_index: int = 0


class ToolResult(BaseModel):
    """Outcome of a server-side tool call; the output itself is stored as an item."""

    seq: int
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
    status: TerminalStatus
    incomplete_reason: str | None = None
    error: UpstreamFailure | None = None


class ResponseOutcome(BaseModel):
    """What the workflow returns."""

    response_id: str
    status: TerminalStatus
