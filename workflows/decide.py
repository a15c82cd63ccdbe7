"""The agent loop's decision, as a pure function of the steps taken so far."""

from dataclasses import dataclass, field

from core.contracts import ModelTurn, ToolCallRef, ToolResult
from core.status import ResponseStatus


@dataclass(frozen=True)
class CallModel:
    """Ask the model for the next turn."""


@dataclass(frozen=True)
class RunTools:
    """Run these server-side tool calls, in parallel."""

    calls: list[ToolCallRef]


@dataclass(frozen=True)
class CompactContext:
    """Summarize the context so far into a compaction item before the next model call."""


@dataclass(frozen=True)
class ListTools:
    """List a remote MCP server's tools before the first model call (one server at a time: the first step starts
    the response, before anything is shown)."""

    label: str


@dataclass(frozen=True)
class RunApproved:
    """Run the calls the client approved (by approval request id), in parallel, before the first model call."""

    approval_request_ids: list[str]


@dataclass(frozen=True)
class Finish:
    """End the response with this status."""

    status: ResponseStatus
    incomplete_reason: str | None = None


Decision = CallModel | RunTools | CompactContext | ListTools | RunApproved | Finish

# The openai SDK's strict validation only accepts its own literals for incomplete_details.reason;
# a step cap is the closest to "max_messages".
STEP_CAP_REASON = "max_messages"


@dataclass
class LoopState:
    """Steps so far: model turns in order and the server-side tool results."""

    turns: list[ModelTurn] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    compacted_at: list[int] = field(default_factory=list)  # how many turns there were at each compaction
    lists_due: list[str] = field(default_factory=list)  # remote MCP servers to list before the first model call
    listed: int = 0
    approved: list[str] = field(default_factory=list)  # approved calls to run then (each adds its mcp_call item)
    approved_run: bool = False

    @property
    def output_count(self) -> int:
        """How many output items the response has so far (a tool result completes its call's item; a compaction,
        a tool listing and an approved call add one each)."""
        ran = len(self.approved) if self.approved_run else 0
        return sum(t.output_items for t in self.turns) + len(self.compacted_at) + self.listed + ran

    @property
    def next_seq(self) -> int:
        """The sequence number of the next step."""
        return 1 + len(self.turns) + len(self.tool_results) + len(self.compacted_at) + self.listed


def decide(state: LoopState, *, max_model_calls: int, max_tool_calls: int | None,
           compact_threshold: int | None = None) -> Decision:
    """Given the steps so far, what the loop does next.

    With `compact_threshold` (context_management), a model call whose context (its input and output tokens) reached
    it is followed by a compaction before the next model call, once per turn.
    """
    if not state.turns:
        if state.listed < len(state.lists_due):
            return ListTools(state.lists_due[state.listed])
        if state.approved and not state.approved_run:
            return RunApproved(state.approved)
        return CallModel()
    last = state.turns[-1]
    done = {r.call_id for r in state.tool_results}
    pending = [c for c in last.tool_calls if c.server_side and c.call_id not in done]
    if pending:
        if max_tool_calls is not None and len(state.tool_results) + len(pending) > max_tool_calls:
            return Finish(ResponseStatus.INCOMPLETE, STEP_CAP_REASON)
        return RunTools(pending)
    if any(not c.server_side for c in last.tool_calls):
        # Server-side calls of this turn have run; the client-side ones go back to the client.
        return Finish(ResponseStatus.COMPLETED)
    if last.tool_calls:
        if len(state.turns) >= max_model_calls:
            return Finish(ResponseStatus.INCOMPLETE, STEP_CAP_REASON)
        context = last.usage.input_tokens + last.usage.output_tokens
        if compact_threshold and context >= compact_threshold and len(state.turns) not in state.compacted_at:
            return CompactContext()
        return CallModel()
    if last.completes_response:
        return Finish(ResponseStatus.COMPLETED)
    return Finish(ResponseStatus.INCOMPLETE, "max_output_tokens")
