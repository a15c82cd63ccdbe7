"""Prometheus metrics: the API's /metrics and the workers' instruments."""

import re

from tests.conftest import Stack
from tests.helpers import create, eventually
from tests.scripted_upstream import Reply, ToolBehaviour


def sample(text: str, name: str, **labels: str) -> float | None:
    """A sample's value from Prometheus text output, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return float(m.group(3))
    return None


async def test_api_metrics_count_requests_by_route_and_open_responses(stack: Stack) -> None:
    model = await stack.model(Reply(text="hi"))
    slow = await stack.model(Reply(text="later", delay=30))
    key = await stack.new_key()
    body = await create(stack, key, model=model, input="x")
    await stack.call("GET", f"/v1/responses/{body['id']}", key)
    await stack.call("GET", "/v1/responses/resp_missing", key)
    running = await create(stack, key, model=slow, input="x", background=True)

    async def scraped() -> str | None:
        text = (await stack.http.get(stack.url + "/metrics")).text
        return text if (sample(text, "agentrunner_responses_open", status="in_progress") or 0) >= 1 else None

    text = await eventually(scraped, what="the slow response counted as in progress")
    route = "/v1/responses/{response_id}"
    assert sample(text, "agentrunner_http_requests_total", method="POST", route="/v1/responses", status="200") >= 2
    assert sample(text, "agentrunner_http_requests_total", method="GET", route=route, status="200") == 1
    assert sample(text, "agentrunner_http_requests_total", method="GET", route=route, status="404") == 1
    assert sample(text, "agentrunner_http_request_seconds_count", method="GET", route=route) == 2
    await stack.call("POST", f"/v1/responses/{running['id']}/cancel", key)


async def test_worker_metrics_for_models_tools_tokens_and_steps(stack: Stack) -> None:
    ok, broken = await stack.tool(ToolBehaviour()), await stack.tool(ToolBehaviour(status=500))
    busy = Reply(status=429, headers={"retry-after-ms": "10"})
    model = await stack.model(Reply(tool_calls=[(ok, {}), (broken, {})], usage=(10, 4)), busy,
                              Reply(text="done", usage=(30, 6)))
    key = await stack.new_key()
    await create(stack, key, model=model, input="go", tools=[{"type": "mcp", "server_label": "agentrunner"}])
    value = stack.metrics.registry.get_sample_value
    assert value("agentrunner_model_call_seconds_count", {"model": model}) == 3  # two turns, one retried
    assert value("agentrunner_model_call_errors_total", {"model": model, "status": "429"}) == 1
    assert value("agentrunner_tool_call_seconds_count", {"tool": ok}) == 1
    assert value("agentrunner_tool_call_errors_total", {"tool": broken}) == 1
    assert value("agentrunner_tool_call_errors_total", {"tool": ok}) is None
    assert value("agentrunner_tokens_total", {"model": model, "kind": "input"}) == 40
    assert value("agentrunner_tokens_total", {"model": model, "kind": "output"}) == 10
    assert value("agentrunner_steps_per_response_sum", {"model": model}) == 4
    assert value("agentrunner_response_seconds_count", {"model": model, "status": "completed"}) == 1
