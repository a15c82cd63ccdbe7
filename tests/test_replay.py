"""Workflow code changes stay compatible with histories recorded by earlier versions (deploys mid-flight)."""

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.conftest import Stack
from tests.helpers import create
from tests.scripted_upstream import Reply
from workflows.response import ResponseWorkflow, ResponseWorkflowV2

DATA = Path(__file__).parent / "data"


def replayer() -> Replayer:
    return Replayer(workflows=[ResponseWorkflowV2, ResponseWorkflow], data_converter=pydantic_data_converter)


def recorded(name: str) -> WorkflowHistory:
    """A history recorded by an earlier version, from tests/data."""
    return WorkflowHistory.from_json("resp_recorded", (DATA / name).read_text())


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def markers(history: WorkflowHistory) -> list[str]:
    """The names of the markers the history recorded, in order."""
    return [e.marker_recorded_event_attributes.marker_name for e in history.events
            if e.HasField("marker_recorded_event_attributes")]


async def assert_replays(history: WorkflowHistory) -> None:
    assert (await replayer().replay_workflow(history)).replay_failure is None


async def test_history_from_before_start_in_first_call_still_replays() -> None:
    # Recorded with the version that marked responses in_progress in a local activity of its own.
    await assert_replays(recorded("history-before-start-in-first-call.json"))


async def test_history_from_before_local_steps_still_replays() -> None:
    # Recorded with the version that ran model and tool steps as regular activities (a tool step and an answer):
    # it replays on its regular activities (workflow.patched), as a response in flight during the deploy would.
    history = recorded("history-before-local-steps.json")
    scheduled = [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    assert [e.activity_task_scheduled_event_attributes.activity_type.name for e in scheduled] == [
        "call_model", "call_tool", "call_model"]
    await assert_replays(history)


async def test_a_response_started_on_the_patched_first_type_still_replays() -> None:
    # Recorded just before new responses moved to ResponseWorkflowV2: ResponseWorkflow with both patches taken (their
    # markers and TemporalChangeVersion upserts), local steps, a tool step and an answer; a response in flight during
    # that deploy finishes on ResponseWorkflow.
    history = recorded("history-response-workflow-v1-patched.json")
    assert workflow_type(history) == "ResponseWorkflow"
    recorded_markers = markers(history)
    assert recorded_markers.count("core_patch") == 2 and recorded_markers.count("core_local_activity") == 4
    await assert_replays(history)


async def test_a_response_whose_finalize_wrote_the_end_again_still_replays() -> None:
    # Recorded on ResponseWorkflowV2 before a model call that ends the row told the workflow so: a tool step, an
    # answer, then the finalize local activity that found the row ended. Its recorded turns say nothing of having
    # ended the row, so the replay schedules finalize as recorded.
    history = recorded("history-response-workflow-v2-finalize.json")
    assert workflow_type(history) == "ResponseWorkflowV2"
    assert markers(history) == ["core_local_activity"] * 4  # call_model, call_tool, call_model, finalize
    await assert_replays(history)


async def test_a_current_history_replays(stack: Stack) -> None:
    model = await stack.model(Reply(text="hi"))
    body = await create(stack, await stack.new_key(), model=model, input="hello")
    handle = stack.temporal.get_workflow_handle(body["id"])
    await handle.result()  # the whole history: the answer leaves before the workflow's own end
    history = await handle.fetch_history()
    assert workflow_type(history) == "ResponseWorkflowV2"
    # The new type carries no patches (nor their search attribute upserts); the model call ended the row: no finalize.
    assert markers(history) == ["core_local_activity"]
    await assert_replays(history)


async def test_a_turn_that_hands_calls_back_ends_the_response_itself(stack: Stack) -> None:
    # A turn of client-side function calls only is the response's last: its model call ends the row in its own commit
    # and says so, so the workflow records no finalize after it; the history still replays.
    model = await stack.model(Reply(tool_calls=[("get_weather", {"city": "Paris"})]))
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    body = await create(stack, await stack.new_key(), model=model, input="weather?", tools=[tool])
    assert body["status"] == "completed" and [i["type"] for i in body["output"]] == ["function_call"]
    handle = stack.temporal.get_workflow_handle(body["id"])
    await handle.result()
    history = await handle.fetch_history()
    assert markers(history) == ["core_local_activity"]
    await assert_replays(history)
