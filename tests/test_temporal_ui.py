"""What an operator sees in Temporal: searchable attributes, a workflow summary, activity summaries."""

from typing import Any

from temporalio.client import WorkflowExecutionStatus

from core.search_attributes import AGENT_MODEL, AGENT_OWNER, AGENT_SERVICE_TIER, AGENT_STATUS
from tests.conftest import Stack
from tests.helpers import create, eventually
from tests.scripted_upstream import Reply, ToolBehaviour


async def test_visibility_query_finds_the_workflow_by_its_attributes(stack: Stack) -> None:
    tool = await stack.tool(ToolBehaviour())
    model = await stack.model(Reply(tool_calls=[(tool, {"q": "x"})]), Reply(text="done"))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="Find the weather in Oslo for tomorrow",
                        service_tier="flex", tools=[{"type": "function", "name": tool}])

    async def found() -> list[str]:
        query = f'AgentModel = "{model}" AND AgentStatus = "completed" AND AgentServiceTier = "flex"'
        return [w.id async for w in stack.temporal.list_workflows(query)]

    assert await eventually(found, what="visibility to index the workflow") == [body["id"]]
    handle = stack.temporal.get_workflow_handle(body["id"])
    desc = await handle.describe()
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    attrs = desc.typed_search_attributes
    assert attrs.get(AGENT_MODEL) == model and attrs.get(AGENT_STATUS) == "completed"
    assert attrs.get(AGENT_SERVICE_TIER) == "flex" and attrs.get(AGENT_OWNER, "").startswith("owner-")
    assert await desc.static_summary() == f"{model} · Find the weather in Oslo for tomorrow"

    summaries: list[Any] = []
    async for event in handle.fetch_history_events():
        # Steps run as local activities: each is a marker, which the UI shows with its summary.
        if event.marker_recorded_event_attributes.marker_name == "core_local_activity" and \
                event.user_metadata.HasField("summary"):
            summaries.append(await _summary(stack, event))
    assert summaries == [f"model call 1 · {model}", f"tool {tool}", f"model call 2 · {model}"]


async def test_failed_response_is_searchable_as_failed(stack: Stack) -> None:
    model = await stack.model(Reply(status=400, error_body={"error": {"message": "nope"}}))
    key = await stack.new_key()
    r = await stack.call("POST", "/v1/responses", key, {"model": model, "input": "hi"})
    assert r.status_code == 400

    async def found() -> list[str]:
        return [w.id async for w in stack.temporal.list_workflows(f'AgentModel = "{model}" AND AgentStatus = "failed"')]

    assert len(await eventually(found, what="failed workflow indexed")) == 1


async def _summary(stack: Stack, event: Any) -> Any:
    payload = event.user_metadata.summary
    return (await stack.temporal.data_converter.decode([payload]))[0]
