"""The Temporal UI shows the agent: current details, the `steps` query, and the remote codec that shows each step's
content from PostgreSQL to an authorized operator while the history itself holds only ids."""

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.json_format import MessageToDict
from temporalio.api.history.v1 import History
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from api.app import create_app
from api.routes.codec import CODEC_PATH
from core.settings import Settings
from stack.dev import codec_endpoint, codec_env
from stack.temporal import temporal_binary
from tests.conftest import ADMIN_TOKEN, Stack
from tests.helpers import create, eventually
from tests.scripted_upstream import Reply, ToolBehaviour
from workflows.response import ResponseWorkflow

pytestmark = pytest.mark.timeout(120)

UI_ORIGIN = "http://127.0.0.1:8233"
TOOL_OUTPUT = '{"forecast": "light rain, 11 degrees"}'
ANSWER = "Oslo tomorrow: light rain, 11 degrees."
ARGUMENTS = {"q": "Oslo tomorrow"}


async def _tool_response(stack: Stack, *, tool_delay: float = 0.0, **fields: Any) -> tuple[dict[str, Any], str]:
    """A response with one server-side tool step (model call, tool, model call); returns its body and the tool."""
    tool = await stack.tool(ToolBehaviour(body=TOOL_OUTPUT, delay=tool_delay))
    model = await stack.model(Reply(tool_calls=[(tool, ARGUMENTS)]), Reply(text=ANSWER))
    body = await create(stack, await stack.new_key(), model=model, input="Weather in Oslo tomorrow?",
                        tools=[{"type": "function", "name": tool}], **fields)
    return body, tool


async def _history_payloads(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """Every payload of the history in proto3 JSON, as the UI and the CLI see them."""
    await handle.result()  # the whole history: the answer leaves before the workflow's own end
    return _payloads_in(MessageToDict(History(events=(await handle.fetch_history()).events)))


def _payloads_in(history: dict[str, Any]) -> list[dict[str, Any]]:
    """The payloads of a history in proto3 JSON (each `payloads` list), in order."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "payloads" and isinstance(value, list):
                    found.extend(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(history)
    return found


def _data(payload: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(payload["data"]))


def _ours(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The json/plain payloads that name a response (the others are the SDK's or plain strings)."""
    out = []
    for p in payloads:
        if base64.b64decode(p["metadata"].get("encoding", "")) == b"json/plain":
            value = _data(p)
            if isinstance(value, dict) and str(value.get("response_id", "")).startswith("resp_"):
                out.append(value)
    return out


@contextlib.asynccontextmanager
async def _app(stack: Stack, **overrides: Any) -> AsyncIterator[FastAPI]:
    """The API app with its lifespan running (database, Temporal), to call in-process as any client address."""
    app = create_app(stack.settings.model_copy(update=overrides))
    async with app.router.lifespan_context(app):
        yield app


def _client(app: FastAPI, host: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 4321)), base_url="http://api")


async def _decode(http: httpx.AsyncClient, payloads: list[dict[str, Any]], **headers: str) -> httpx.Response:
    return await http.post(CODEC_PATH + "/decode", json={"payloads": payloads},
                           headers={"X-Namespace": "default", **headers})


def _refused(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


async def test_decode_shows_each_steps_content_to_the_admin_token(stack: Stack) -> None:
    body, tool = await _tool_response(stack)
    call = next(i for i in body["output"] if i["type"] == "mcp_call")
    payloads = await _history_payloads(stack.temporal.get_workflow_handle(body["id"]))
    raw = json.dumps(payloads)
    # The history holds ids and summaries only: no tool output, no answer, no input text.
    assert "light rain" not in str([base64.b64decode(p.get("data", "")) for p in payloads]) and "Oslo" not in raw

    async with _app(stack) as app, _client(app, "10.1.2.3") as http:
        r = await _decode(http, payloads, Authorization=f"Bearer {ADMIN_TOKEN}")
    assert r.status_code == 200, r.text
    decoded = r.json()["payloads"]
    assert len(decoded) == len(payloads)
    # What is not ours comes back as it was (the SDK's marker data, summaries, the metadata query).
    assert [p for p in decoded if p not in payloads] == [d for p, d in zip(payloads, decoded, strict=True) if p != d]
    values = _ours(decoded)
    steps = {v["seq"]: v["step"] for v in values if "step" in v}
    assert sorted(steps) == [1, 2, 3]
    first, tool_step, second = steps[1], steps[2], steps[3]
    # Model call 1: the messages it was sent, and its answer (the call of the tool).
    assert first["kind"] == "model_call"
    assert [(i["role"], i["content"][0]["text"]) for i in first["details"]["request"]["input"]] == [
        ("user", "Weather in Oslo tomorrow?")]
    assert [i["id"] for i in first["details"]["result"]] == [call["id"]]
    # The tool step: its real arguments and output.
    assert tool_step["kind"] == "tool_call" and tool_step["tool_name"] == tool
    assert json.loads(tool_step["details"]["arguments"]) == ARGUMENTS
    assert tool_step["details"]["output"] == TOOL_OUTPUT
    # Model call 2: it saw the tool's output and answered with the text.
    assert [i.get("output") for i in second["details"]["request"]["input"] if i["type"] == "mcp_call"] == [TOOL_OUTPUT]
    assert second["details"]["result"][0]["content"][0]["text"] == ANSWER
    # The workflow's input and result: the response's input and output items.
    responses = [v["response"] for v in values if "response" in v]
    assert responses and all(r["status"] == "completed" for r in responses)
    assert any(o.get("content", [{}])[0].get("text") == ANSWER for o in responses[-1]["output"])
    # Model turns and tool results are step references: they name their response and step.
    assert {v["seq"] for v in values if "ok" in v} == {2}

    # Encode is the identity; another namespace's payloads are left alone.
    async with _app(stack) as app, _client(app, "10.1.2.3") as http:
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        encoded = await http.post(CODEC_PATH + "/encode", json={"payloads": payloads}, headers=auth)
        assert encoded.status_code == 200 and encoded.json()["payloads"] == payloads
        other = await _decode(http, payloads, **auth, **{"X-Namespace": "someone-else"})
        assert other.status_code == 200 and other.json()["payloads"] == payloads


async def test_decode_refuses_everyone_else(stack: Stack) -> None:
    body, _ = await _tool_response(stack)
    payloads = await _history_payloads(stack.temporal.get_workflow_handle(body["id"]))
    key = await stack.new_key()
    async with _app(stack, codec_allow_loopback=True) as app:
        async with _client(app, "10.1.2.3") as remote:
            _refused(await _decode(remote, payloads), 401)  # no token
            _refused(await _decode(remote, payloads, Authorization="Bearer wrong"), 401)
            _refused(await _decode(remote, payloads, Authorization=f"Bearer {key}"), 401)  # an API key is not admin
            _refused(await remote.post(CODEC_PATH + "/encode", json={"payloads": payloads}), 401)
        async with _client(app, "127.0.0.1") as local:
            # Loopback is trusted only without a token (a wrong one is refused), and from no foreign web page.
            _refused(await _decode(local, payloads, Authorization="Bearer wrong"), 401)
            _refused(await _decode(local, payloads, Origin="http://evil.example"), 401)
    # No admin token configured: only the dev loopback rule could let anyone in.
    async with _app(stack, admin_token=None) as app, _client(app, "10.1.2.3") as remote:
        _refused(await _decode(remote, payloads, Authorization=f"Bearer {ADMIN_TOKEN}"), 403)


async def test_loopback_decodes_without_a_token_only_in_dev(stack: Stack) -> None:
    body, _ = await _tool_response(stack)
    payloads = await _history_payloads(stack.temporal.get_workflow_handle(body["id"]))
    async with _app(stack, codec_allow_loopback=True) as app:
        for host in ("127.0.0.1", "::1"):
            async with _client(app, host) as local:
                r = await _decode(local, payloads, Origin=UI_ORIGIN)
                assert r.status_code == 200, r.text
                assert r.headers["access-control-allow-origin"] == UI_ORIGIN  # the UI may read it
                tools = [v["step"] for v in _ours(r.json()["payloads"]) if v.get("step", {}).get("kind") == "tool_call"]
                assert tools and tools[0]["details"]["output"] == TOOL_OUTPUT
    # The API on its real socket (a loopback caller) with the setting off, as in production: refused.
    r = await stack.http.post(stack.url + CODEC_PATH + "/decode", json={"payloads": payloads})
    _refused(r, 401)


async def test_cors_answers_the_ui_origin_on_the_codec_routes_only(stack: Stack) -> None:
    preflight = {"Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type,x-namespace"}
    for path in ("/decode", "/encode"):
        r = await stack.http.options(stack.url + CODEC_PATH + path, headers=preflight)
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == UI_ORIGIN
        assert "POST" in r.headers["access-control-allow-methods"]
        allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "x-namespace"} <= allowed
    localhost = await stack.http.options(stack.url + CODEC_PATH + "/decode",
                                         headers={**preflight, "Origin": "http://localhost:8233"})
    assert localhost.headers["access-control-allow-origin"] == "http://localhost:8233"
    foreign = await stack.http.options(stack.url + CODEC_PATH + "/decode",
                                       headers={**preflight, "Origin": "http://evil.example"})
    assert foreign.status_code == 400 and "access-control-allow-origin" not in foreign.headers
    # The rest of the API answers no browser origin.
    other = await stack.http.options(stack.url + "/v1/responses", headers=preflight)
    assert "access-control-allow-origin" not in other.headers
    # A refusal carries CORS too, so the UI can show why.
    r = await stack.http.post(stack.url + CODEC_PATH + "/decode", json={"payloads": []}, headers={"Origin": UI_ORIGIN})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == UI_ORIGIN


async def test_the_temporal_cli_decodes_through_the_codec_with_the_admin_token(stack: Stack) -> None:
    body, _ = await _tool_response(stack)
    await stack.temporal.get_workflow_handle(body["id"]).result()
    # Not blocking: the API that answers the CLI's codec calls runs in this event loop.
    show = await asyncio.create_subprocess_exec(
        temporal_binary(), "workflow", "show", "--workflow-id", body["id"], "--output", "json",
        "--address", stack.settings.temporal_address, "--codec-endpoint", stack.url + CODEC_PATH,
        "--codec-auth", f"Bearer {ADMIN_TOKEN}", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"})
    out, err = await asyncio.wait_for(show.communicate(), timeout=60)
    assert show.returncode == 0, err.decode()
    steps = {v["seq"]: v["step"] for v in _ours(_payloads_in(json.loads(out))) if "step" in v}
    assert steps[2]["details"]["output"] == TOOL_OUTPUT  # the tool's output and the model's answer
    assert steps[3]["details"]["result"][0]["content"][0]["text"] == ANSWER


async def test_current_details_follow_the_loop_and_the_steps_query_traces_it(stack: Stack) -> None:
    body, tool = await _tool_response(stack, tool_delay=5.0, background=True)
    handle = stack.temporal.get_workflow_handle(body["id"])

    async def details() -> str:
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        return metadata.current_details

    async def waiting_for_the_tool() -> bool:
        return await details() == f"model call 1 · waiting for tool {tool}"

    await eventually(waiting_for_the_tool, timeout=30, interval=0.1, what="details naming the running tool")
    running = await handle.query(ResponseWorkflow.steps)
    assert [(s.kind, s.status) for s in running.steps] == [("model_call", "completed"), ("tool_call", "running")]
    await handle.result()
    assert await details() == "completed · 2 model calls, 1 tool call"

    trace = await handle.query(ResponseWorkflow.steps)
    assert trace.response_id == body["id"] and trace.details == "completed · 2 model calls, 1 tool call"
    assert [(s.seq, s.kind, s.name, s.status, s.turn) for s in trace.steps] == [
        (1, "model_call", body["model"], "completed", 1), (2, "tool_call", tool, "completed", None),
        (3, "model_call", body["model"], "completed", 2)]
    model_call, tool_step, answer = trace.steps
    assert model_call.item_ids == tool_step.item_ids and len(tool_step.item_ids) == 1 and answer.item_ids == []
    assert tool_step.ok is True
    assert all(s.ended_at is not None and s.started_at <= s.ended_at for s in trace.steps)
    assert tool_step.ended_at is not None and (tool_step.ended_at - tool_step.started_at).total_seconds() >= 4
    # The query's answer, through the codec, carries each step's content too.
    payload = (await stack.temporal.data_converter.encode([trace]))[0]
    encoded = MessageToDict(payload)
    async with _app(stack) as app, _client(app, "10.1.2.3") as http:
        r = await _decode(http, [encoded], Authorization=f"Bearer {ADMIN_TOKEN}")
    decoded = _data(r.json()["payloads"][0])
    assert decoded["steps"][1]["step"]["details"]["output"] == TOOL_OUTPUT


async def test_client_side_calls_show_as_waiting_for_the_client(stack: Stack) -> None:
    model = await stack.model(Reply(tool_calls=[("get_time", {"tz": "CET"})]))
    body = await create(stack, await stack.new_key(), model=model, input="time?",
                        tools=[{"type": "function", "name": "get_time", "parameters": {"type": "object"}}])
    handle = stack.temporal.get_workflow_handle(body["id"])
    await handle.result()
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details == "completed · 1 model call, 0 tool calls · waiting for the client: get_time"
    assert "steps" in [q.name for q in metadata.definition.query_definitions]


def test_dev_points_its_ui_at_the_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTRUNNER_CODEC_ALLOW_LOOPBACK", "AGENTRUNNER_CODEC_CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None, api_port=8123, temporal_ui_port=8999)
    assert codec_endpoint(settings) == "http://127.0.0.1:8123" + CODEC_PATH
    env = codec_env(settings)
    assert env["AGENTRUNNER_CODEC_ALLOW_LOOPBACK"] == "true"
    assert json.loads(env["AGENTRUNNER_CODEC_CORS_ORIGINS"]) == ["http://127.0.0.1:8999", "http://localhost:8999"]
