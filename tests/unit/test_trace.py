"""The current-details line and the step trace the response workflow keeps (workflows/trace.py, pure)."""

from datetime import UTC, datetime, timedelta

from core.status import ResponseStatus
from workflows.trace import Trace

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_details_follow_a_tool_loop() -> None:
    trace = Trace("resp_1")
    assert trace.details == "queued"
    trace.begin(1, "model_call", "gpt-4o-mini", at(0), turn=1)
    assert trace.details == "model call 1 · gpt-4o-mini"
    trace.end(1, at(1), item_ids=["mcp_a", "mcp_b"])
    trace.begin(2, "tool_call", "get_weather", at(1), item_ids=["mcp_a"])
    trace.begin(3, "tool_call", "get_time", at(1), item_ids=["mcp_b"])
    assert trace.details == "model call 1 · waiting for tools get_weather, get_time"
    trace.end(3, at(2), ok=False)
    assert trace.details == "model call 1 · waiting for tool get_weather"
    trace.end(2, at(3), ok=True)
    trace.begin(4, "compaction", "gpt-4o-mini", at(3))
    assert trace.details == "compacting the context after model call 1"
    trace.end(4, at(4))
    trace.begin(5, "model_call", "gpt-4o-mini", at(4), turn=2)
    assert trace.details == "model call 2 · gpt-4o-mini"
    trace.end(5, at(5), item_ids=[])
    trace.finish(ResponseStatus.COMPLETED, at(5))
    assert trace.details == "completed · 2 model calls, 2 tool calls"

    snap = trace.snapshot()
    assert snap.response_id == "resp_1" and snap.details == trace.details
    assert [(s.seq, s.kind, s.status, s.ok) for s in snap.steps] == [
        (1, "model_call", "completed", None), (2, "tool_call", "completed", True),
        (3, "tool_call", "completed", False), (4, "compaction", "completed", None),
        (5, "model_call", "completed", None)]
    assert snap.steps[0].item_ids == ["mcp_a", "mcp_b"] and snap.steps[1].item_ids == ["mcp_a"]
    assert (snap.steps[1].started_at, snap.steps[1].ended_at) == (at(1), at(3))
    snap.steps[0].status = "failed"  # a copy: the query's answer is not the workflow's state
    assert trace.steps[0].status == "completed"


def test_listing_approvals_and_handing_back() -> None:
    trace = Trace("resp_2")
    trace.begin(1, "list_tools", "calc", at(0))
    assert trace.details == "listing the tools of calc"
    trace.end(1, at(1))
    trace.begin(2, "tool_call", "approved call", at(1), item_ids=["mcp_x"])
    trace.begin(3, "tool_call", "approved call", at(1), item_ids=["mcp_y"])
    assert trace.details == "running 2 approved calls"
    trace.end(2, at(2), ok=True)
    trace.end(3, at(2), ok=True)
    trace.begin(4, "model_call", "m", at(2), turn=1)
    trace.end(4, at(3), item_ids=["call_1", "mcpr_2"])
    trace.hand_back([("call_1", "get_time"), ("mcpr_2", "delete_file")])
    trace.finish(ResponseStatus.COMPLETED, at(3))
    assert trace.details == ("completed · 1 model call, 2 tool calls · waiting for the client: get_time, "
                             "approval of delete_file")


def test_a_failure_or_cancel_ends_the_running_steps() -> None:
    failed = Trace("resp_3")
    failed.begin(1, "model_call", "m", at(0), turn=1)
    failed.finish(ResponseStatus.FAILED, at(2), reason="upstream 400: nope")
    assert failed.details == "failed · 1 model call, 0 tool calls · upstream 400: nope"
    assert (failed.steps[0].status, failed.steps[0].ended_at) == ("failed", at(2))

    cancelled = Trace("resp_4")
    cancelled.begin(1, "model_call", "m", at(0), turn=1)
    cancelled.end(1, at(1), item_ids=["mcp_a"])
    cancelled.begin(2, "tool_call", "slow", at(1), item_ids=["mcp_a"])
    cancelled.finish(ResponseStatus.CANCELLED, at(2))
    assert cancelled.details == "cancelled · 1 model call, 1 tool call"
    assert [s.status for s in cancelled.steps] == ["completed", "cancelled"]

    incomplete = Trace("resp_5")
    incomplete.finish(ResponseStatus.INCOMPLETE, at(0), reason="max_messages")
    assert incomplete.details == "incomplete · 0 model calls, 0 tool calls · max_messages"
