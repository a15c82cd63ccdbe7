"""Crash tests with real processes: SIGKILL a worker mid-loop, restart the API mid-response."""

import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN, Stack, StackFactory
from tests.helpers import create, eventually, free_port, process, text_of
from tests.scripted_upstream import Reply, ToolBehaviour
from tests.test_responses_upstream import assert_reasoning_carried, three_step_replies

pytestmark = pytest.mark.timeout(180)


def _env(stack: Stack, **extra: str) -> dict[str, str]:
    s = stack.settings
    assert s.database_url
    return {**os.environ, "DATABASE_URL": s.database_url, "TEMPORAL_ADDRESS": s.temporal_address,
            "AGENTRUNNER_TASK_QUEUE": s.task_queue, "AGENTRUNNER_ADMIN_TOKEN": ADMIN_TOKEN,
            "AGENTRUNNER_STATE_DIR": str(s.state_dir),
            # A killed worker's cached workflows move on after 1 s instead of Temporal's default 10 s.
            "AGENTRUNNER_WORKER_STICKY_TIMEOUT_SECONDS": "1", **s.fetch.env(), **extra}


async def _alive(proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
    return True


async def test_worker_sigkill_mid_loop_then_new_worker_finishes(make_stack: StackFactory, tmp_path: Path) -> None:
    async with make_stack(in_process_worker=False) as stack:
        t1, t2, t3 = [await stack.tool(ToolBehaviour()) for _ in range(3)]
        model = await stack.model(
            Reply(tool_calls=[(t1, {"q": "1"}), (t2, {"q": "2"})]),
            Reply(tool_calls=[(t3, {"q": "3"})], delay=3.0),  # the slow step the worker dies in
            Reply(text="all three done"),
            per_turn=True,
        )
        key = await stack.new_key()
        script = stack.upstream.scripts[model]
        tools = [{"type": "function", "name": t} for t in (t1, t2, t3)]
        with process(["-m", "worker"], _env(stack), tmp_path / "worker1.log") as first:
            body = await create(stack, key, model=model, input="go", tools=tools, background=True)

            async def in_slow_step() -> bool:
                await _alive(first)
                return len(script.requests) == 2

            await eventually(in_slow_step, timeout=60, what="second model call in flight")
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        status = (await stack.call("GET", f"/v1/responses/{body['id']}", key)).json()["status"]
        assert status == "in_progress"

        with process(["-m", "worker"], _env(stack), tmp_path / "worker2.log") as second:
            async def finished() -> dict[str, Any] | None:
                await _alive(second)
                got = (await stack.call("GET", f"/v1/responses/{body['id']}", key)).json()
                return got if got["status"] not in ("queued", "in_progress") else None

            final = await eventually(finished, timeout=90, interval=0.2, what="completion after the crash")
        assert final["id"] == body["id"] and final["status"] == "completed", json.dumps(final)[:3000]
        assert text_of(final) == "all three done"
        for name in (t1, t2, t3):
            keys = [h.idempotency_key for h in stack.upstream.tool_hits[name]]
            assert len(keys) == 1, f"{name} hit {len(keys)} times"
        kinds = Counter(i["type"] for i in final["output"])
        assert kinds == {"mcp_call": 3, "message": 1}
        assert all(i["status"] == "completed" for i in final["output"])
        assert len({i["id"] for i in final["output"]}) == len(final["output"])
        assert len(script.requests) == 4, "only the interrupted model call is repeated"
        steps = (await stack.call("GET", f"/v1/responses/{body['id']}/steps", key)).json()["data"]
        assert [s["kind"] for s in steps] == ["model_call", "tool_call", "tool_call", "model_call", "tool_call",
                                              "model_call"]
        assert steps[3]["attempt"] == 2 and all(s["state"] == "completed" for s in steps)
        # The step that met the lost workflow task had the workflow complete its task (a timer) before going on.
        timers = [e async for e in stack.temporal.get_workflow_handle(body["id"]).fetch_history_events()
                  if e.HasField("timer_started_event_attributes")]
        assert timers, "a checkpoint after the lost workflow task"


async def test_native_responses_loop_survives_worker_sigkill(make_stack: StackFactory, tmp_path: Path) -> None:
    """A `--api responses` alias through a 3-step server-side tool loop, its worker killed in the second step: it
    completes, and each turn's reasoning `encrypted_content` reaches every later turn byte for byte."""
    async with make_stack(in_process_worker=False) as stack:
        tool = await stack.tool(ToolBehaviour())
        replies = three_step_replies(tool)
        replies[1].delay = 3.0  # the slow step the worker dies in
        model = await stack.model(*replies, per_turn=True, api="responses")
        key = await stack.new_key()
        script = stack.upstream.scripts[model]
        with process(["-m", "worker"], _env(stack), tmp_path / "worker1.log") as first:
            body = await create(stack, key, model=model, input="go", tools=[{"type": "function", "name": tool}],
                                background=True)

            async def in_slow_step() -> bool:
                await _alive(first)
                return len(script.requests) == 2

            await eventually(in_slow_step, timeout=60, what="second model call in flight")
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        with process(["-m", "worker"], _env(stack), tmp_path / "worker2.log") as second:
            async def finished() -> dict[str, Any] | None:
                await _alive(second)
                got = (await stack.call("GET", f"/v1/responses/{body['id']}", key)).json()
                return got if got["status"] not in ("queued", "in_progress") else None

            final = await eventually(finished, timeout=90, interval=0.2, what="completion after the crash")
        assert final["status"] == "completed" and text_of(final) == "both looked up", json.dumps(final)[:3000]
        assert len(script.requests) == 4, "only the interrupted model call is repeated"
        # The killed call's client hung up before it answered; its retry (same input) answered instead.
        assert script.aborted == 1 and script.requests[1]["input"] == script.requests[2]["input"]
        del script.requests[1]
        assert [i["encrypted_content"] for i in final["output"] if i["type"] == "reasoning"] == script.encrypted
        assert_reasoning_carried(script.requests, final["output"])
        assert len(stack.upstream.tool_hits[tool]) == 2
        assert len({i["id"] for i in final["output"]}) == len(final["output"])


async def test_api_restart_while_background_response_runs(stack: Stack, tmp_path: Path) -> None:
    model = await stack.model(Reply(text="survived the API restart", delay=2.0))
    key = await stack.new_key()
    port = free_port()
    env = _env(stack, AGENTRUNNER_API_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}

    async def api_up(proc: subprocess.Popen[bytes]) -> bool:
        await _alive(proc)
        try:
            return (await stack.http.get(base + "/healthz")).status_code == 200
        except Exception:
            return False

    with process(["-m", "stack.cli", "api"], env, tmp_path / "api1.log") as api:
        await eventually(lambda: api_up(api), timeout=60, what="API up")
        r = await stack.http.post(base + "/v1/responses", headers=headers,
                                  json={"model": model, "input": "hi", "background": True})
        assert r.status_code == 200, r.text
        rid = r.json()["id"]
        api.send_signal(signal.SIGKILL)
        api.wait(timeout=10)
    with process(["-m", "stack.cli", "api"], env, tmp_path / "api2.log") as api2:
        await eventually(lambda: api_up(api2), timeout=60, what="API up again")

        async def done() -> dict[str, Any] | None:
            got = (await stack.http.get(f"{base}/v1/responses/{rid}", headers=headers)).json()
            return got if got["status"] == "completed" else None

        final = await eventually(done, timeout=60, what="completion after API restart")
    assert text_of(final) == "survived the API restart"
    assert len(stack.upstream.scripts[model].requests) == 1


async def test_worker_sigkill_mid_stream_then_stream_completes(make_stack: StackFactory, tmp_path: Path) -> None:
    from tests.streaming_helpers import assert_well_formed, sse_events, streamed_text

    text = " ".join(f"token{i}" for i in range(40))
    async with make_stack(in_process_worker=False) as stack:
        model = await stack.model(Reply(text=text, token_delay=0.1), per_turn=True)
        key = await stack.new_key()
        script = stack.upstream.scripts[model]
        events: list[dict[str, Any]] = []
        with process(["-m", "worker"], _env(stack), tmp_path / "worker1.log") as first:
            async with stack.http.stream("POST", stack.url + "/v1/responses", json={
                    "model": model, "input": "go", "stream": True}, headers={"Authorization": f"Bearer {key}"}) as r:
                stream = sse_events(r)
                async for event in stream:
                    events.append(event)
                    if streamed_text(events).count("token") >= 8:
                        break
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
                with process(["-m", "worker"], _env(stack), tmp_path / "worker2.log"):
                    async for event in stream:  # the same connection goes on
                        events.append(event)
        assert_well_formed(events)
        assert events[-1]["type"] == "response.completed"
        assert streamed_text(events) == text
        assert len(script.requests) == 2, "the interrupted model call ran again on the new worker"
        assert len({e["item"]["id"] for e in events if e["type"] == "response.output_item.added"}) == 1
        final = events[-1]["response"]
        assert final["output"][0]["content"][0]["text"] == text


async def test_sigterm_lets_the_inflight_step_finish_and_another_worker_continues(
        make_stack: StackFactory, tmp_path: Path) -> None:
    async with make_stack(in_process_worker=False) as stack:
        tool = await stack.tool(ToolBehaviour(delay=2.0))
        model = await stack.model(Reply(tool_calls=[(tool, {"q": "x"})]), Reply(text="finished"), per_turn=True)
        key = await stack.new_key()
        hits = stack.upstream.tool_hits[tool]
        env = _env(stack, AGENTRUNNER_WORKER_SHUTDOWN_GRACE_SECONDS="20")
        with process(["-m", "worker"], env, tmp_path / "worker1.log") as first:
            body = await create(stack, key, model=model, input="go", background=True,
                                tools=[{"type": "function", "name": tool}])

            async def tool_in_flight() -> bool:
                await _alive(first)
                return len(hits) == 1

            await eventually(tool_in_flight, timeout=60, what="tool call in flight")
            first.send_signal(signal.SIGTERM)
            with process(["-m", "worker"], _env(stack), tmp_path / "worker2.log"):
                async def finished() -> dict[str, Any] | None:
                    got = (await stack.call("GET", f"/v1/responses/{body['id']}", key)).json()
                    return got if got["status"] not in ("queued", "in_progress") else None

                final = await eventually(finished, timeout=90, interval=0.2, what="completion")
            assert first.wait(timeout=30) == 0, "the stopping worker exits cleanly by itself"
        assert final["status"] == "completed" and text_of(final) == "finished"
        assert len(hits) == 1 and hits[0].finished is not None, "the in-flight call finished, once"
        steps = (await stack.call("GET", f"/v1/responses/{body['id']}/steps", key)).json()["data"]
        assert [(s["kind"], s["attempt"], s["state"]) for s in steps] == [
            ("model_call", 1, "completed"), ("tool_call", 1, "completed"), ("model_call", 1, "completed")]
        assert "shutting down" in (tmp_path / "worker1.log").read_text()
