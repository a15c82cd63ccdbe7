"""The measured sections of a benchmark run: each sends its workload to agentrunner and its references."""

import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.history.v1 import History
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.mcp import call_directly, mcp_server, timed_direct_mcp_loop, timed_mcp_response
from bench.measure import (
    LoopResult,
    Target,
    closed_loop,
    responses_body,
    summary,
    timed_direct,
    timed_response,
    timed_stream,
)
from bench.serialization import serialization
from bench.stack import OurStack, cpu_split, rss_bytes
from bench.upstream import TOOL, Behaviour
from core.settings import Settings
from core.temporal import connect_temporal


@dataclass
class Counts:
    """How much of each workload one run sends."""

    single_n: int = 50
    slow_n: int = 12
    steps: tuple[int, ...] = (1, 3, 5, 10)
    steps_n: int = 8
    workers: tuple[int, ...] = (1, 2, 4)
    concurrency: int = 32
    window_s: float = 15.0
    stream_n: int = 20
    in_flight: int = 100
    in_flight_latency_ms: int = 15_000  # long enough that every in-flight response is open at once
    history_steps: tuple[int, ...] = (0, 1, 3, 5, 10)
    serialization_n: int = 500


SMOKE = Counts(single_n=3, slow_n=2, steps=(1, 3), steps_n=2, workers=(1, 2), concurrency=4, window_s=2.0,
               stream_n=3, in_flight=10, in_flight_latency_ms=3_000, history_steps=(0, 1, 3), serialization_n=20)
STREAM = Behaviour(tokens=20, token_delay_ms=20)
OVERHEAD_LATENCIES_MS = (0, 500)
AGENT_TOOL_STEPS = 2  # a 5-step agent: three model calls around two tool calls
MCP_CALLS = (1, 3)
# The peers whose /v1/responses runs remote MCP tools itself: ogx (MCP is its only kind of server-side tool).
# Neither peer runs a function tool server-side, so the steps section (our registered HTTP tool) measures no peer;
# ogx's cost per tool step is measured with an MCP tool in the mcp section, against the same MCP server as ours.
MCP_PEERS = ("ogx",)
HISTORY_PAD = 100_000


def peer_models() -> list[str]:
    """Every model name a peer is sent (ogx serves only the models the upstream lists when it starts)."""
    behaviours = [*(Behaviour(latency_ms=ms) for ms in OVERHEAD_LATENCIES_MS), STREAM,
                  *(Behaviour(steps=n) for n in MCP_CALLS)]
    return [b.model for b in behaviours]


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least-squares line y = intercept + slope·x, with r²."""
    slope, intercept = statistics.linear_regression(xs, ys)
    # For a least-squares line r² is Pearson's r squared; r is undefined for flat ys, which the line fits exactly.
    r2 = statistics.correlation(xs, ys) ** 2 if len(set(ys)) > 1 else 1.0
    return {"intercept": intercept, "slope": slope, "r2": r2}


class Bench:
    """One run: the targets, the counts and what has been measured so far."""

    def __init__(self, http: httpx.AsyncClient, ours: Target, upstream: str, peers: list[Target],
                 counts: Counts, admin: tuple[str, str], settings: Settings) -> None:
        self.http, self.ours, self.upstream, self.peers, self.counts = http, ours, upstream, peers, counts
        self._admin_url, self._admin_token = admin
        self._registered: set[str] = set()
        self.direct = Target("direct", upstream)
        self.settings = settings
        self._client: Client | None = None

    async def temporal(self) -> Client:
        """The Temporal client, connected on first use (only some sections need one)."""
        if self._client is None:
            self._client = await connect_temporal(self.settings)
        return self._client

    async def register(self, b: Behaviour) -> None:
        """Route this behaviour's model name to the upstream (and the echo tool, once)."""
        if not self._registered:
            await self._admin("/admin/tools", {"name": TOOL, "url": f"{self.upstream}/tools/{TOOL}",
                                               "description": "echoes its arguments"})
        if b.model not in self._registered:
            await self._admin("/admin/models", {"alias": b.model, "base_url": self.upstream + "/v1"})
            self._registered.add(b.model)

    async def _admin(self, path: str, body: dict[str, Any]) -> None:
        """Register a model or tool (replacing one an earlier run left, pointing at its own upstream)."""
        r = await self.http.post(self._admin_url + path, json=body,
                                 headers={"Authorization": f"Bearer {self._admin_token}"})
        r.raise_for_status()

    async def overhead(self) -> dict[str, Any]:
        """Single-step blocking responses: ours, each peer's and the bare upstream call, interleaved."""
        out: dict[str, Any] = {}
        for latency, n in zip(OVERHEAD_LATENCIES_MS, (self.counts.single_n, self.counts.slow_n), strict=True):
            b = Behaviour(latency_ms=latency)
            await self.register(b)
            samples: dict[str, list[float]] = {t.name: [] for t in (self.ours, self.direct, *self.peers)}
            for i in range(n + 2):  # the first two rounds warm connections and caches
                row = {"agentrunner": await timed_response(self.http, self.ours, b),
                       "direct": await timed_direct(self.http, self.upstream, b)}
                for peer in self.peers:
                    row[peer.name] = await timed_response(self.http, peer, b)
                if i >= 2:
                    for k, v in row.items():
                        samples[k].append(v)
            stats = {k: summary(v) for k, v in samples.items()}
            out[f"{latency}ms"] = {**stats, **_ratios(stats, "p50"), **_ratios(stats, "p99")}
        return out

    async def steps(self) -> dict[str, Any]:
        """Responses with 1, 3, 5, 10 tool steps vs the client running the same loop itself."""
        rows: list[dict[str, Any]] = []
        for steps in self.counts.steps:
            b = Behaviour(steps=steps)
            await self.register(b)
            ours, direct = [], []
            for i in range(self.counts.steps_n + 1):  # alternating; the first round warms up
                mine = await timed_response(self.http, self.ours, b)
                theirs = await timed_direct(self.http, self.upstream, b)
                if i:
                    ours.append(mine)
                    direct.append(theirs)
            rows.append({"steps": steps, "agentrunner": summary(ours), "direct": summary(direct)})
        xs = [float(s) for s in self.counts.steps]
        fits = {q: {k: linear_fit(xs, [r[k][q] for r in rows]) for k in ("agentrunner", "direct")}
                for q in ("p50", "p99")}
        return {"rows": rows, "fit_p50": fits["p50"], "fit_p99": fits["p99"],
                "added_ms_per_step": fits["p50"]["agentrunner"]["slope"] - fits["p50"]["direct"]["slope"],
                "added_ms_per_step_p99": fits["p99"]["agentrunner"]["slope"] - fits["p99"]["direct"]["slope"]}

    async def streaming(self) -> dict[str, Any]:
        """First token → first client delta, and the gap between deltas, for a 20-token answer at 20 ms/token."""
        await self.register(STREAM)
        targets = [(self.ours, False), (self.direct, True), *((peer, False) for peer in self.peers)]
        first: dict[str, list[float]] = {t.name: [] for t, _ in targets}
        gaps: dict[str, list[float]] = {t.name: [] for t, _ in targets}
        for i in range(self.counts.stream_n + 1):
            for t, chat in targets:
                timing = await timed_stream(self.http, t, STREAM, chat=chat)
                if i:
                    first[t.name].append(timing.first_token_ms)
                    gaps[t.name].extend(timing.gaps_ms)
        first_stats = {k: summary(v) for k, v in first.items()}
        gap_stats = {k: summary(v) for k, v in gaps.items()}
        return {"behaviour": asdict(STREAM),
                "first_token_ms": {**first_stats, **_ratios(first_stats, "p50"), **_ratios(first_stats, "p99")},
                "inter_delta_gap_ms": {**gap_stats, **_ratios(gap_stats, "p50"), **_ratios(gap_stats, "p99")},
                "deltas_per_response": {k: len(v) / self.counts.stream_n + 1 for k, v in gaps.items()}}

    async def throughput(self, stack: OurStack) -> dict[str, Any]:
        """Single-step responses per second at saturation with 1, 2, 4 worker processes."""
        b = Behaviour()
        await self.register(b)
        rows = []
        for n in self.counts.workers:
            stack.scale(n)
            await self._wait_for_pollers(n)
            loop = await closed_loop(lambda: timed_response(self.http, self.ours, b), self.counts.concurrency,
                                     self.counts.window_s, probe=lambda: _cpu(stack))
            rows.append({"workers": n, "per_second": loop.per_second, "errors": loop.errors,
                         "cpu_ms_per_response": _cpu_per_response(loop)})
        # A 5-step agent (model, tool, model, tool, model) on two workers: the CPU split the scale-out estimate in
        # the README multiplies.
        agent = Behaviour(steps=AGENT_TOOL_STEPS)
        await self.register(agent)
        stack.scale(2)
        await self._wait_for_pollers(2)
        loop = await closed_loop(lambda: timed_response(self.http, self.ours, agent), self.counts.concurrency,
                                 self.counts.window_s, probe=lambda: _cpu(stack))
        agent_row = {"workers": 2, "tool_steps": AGENT_TOOL_STEPS, "per_second": loop.per_second,
                     "errors": loop.errors, "cpu_ms_per_response": _cpu_per_response(loop)}
        direct = await closed_loop(lambda: timed_direct(self.http, self.upstream, b), self.counts.concurrency,
                                   self.counts.window_s / 3)
        out: dict[str, Any] = {"concurrency": self.counts.concurrency, "window_s": self.counts.window_s,
                               "rows": rows, "agent": agent_row, "direct_per_second": direct.per_second}
        for peer in self.peers:
            got = await closed_loop(partial(timed_response, self.http, peer, b), self.counts.concurrency,
                                    self.counts.window_s / 3)
            out[f"{peer.name}_per_second"] = got.per_second
            out[f"{peer.name}_errors"] = got.errors
        return out

    async def memory(self, stack: OurStack, workers: int) -> dict[str, Any]:
        """Resident memory of the API and the workers, idle and with many responses in flight."""
        stack.scale(workers)
        await self._wait_for_pollers(workers)
        idle = {name: rss_bytes(pid) for name, pid in stack.pids().items()}
        b = Behaviour(latency_ms=self.counts.in_flight_latency_ms)
        await self.register(b)
        created = await asyncio.gather(*(self.http.post(self.ours.base_url + "/v1/responses", headers=self.ours.headers,
                                                        json=responses_body(b, background=True))
                                         for _ in range(self.counts.in_flight)))
        for r in created:
            r.raise_for_status()
        peak = dict(idle)
        in_flight_seen = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for name, pid in stack.pids().items():
                peak[name] = max(peak[name], rss_bytes(pid))
            open_ = await self._open_responses()
            in_flight_seen = max(in_flight_seen, open_)
            if not open_:
                break
            await asyncio.sleep(0.5)
        mib = 1024 * 1024
        return {"workers": workers, "in_flight": in_flight_seen,
                "idle_mib": {k: v / mib for k, v in idle.items()},
                "in_flight_mib": {k: v / mib for k, v in peak.items()},
                "idle_total_mib": sum(idle.values()) / mib, "in_flight_total_mib": sum(peak.values()) / mib}

    async def phases(self) -> dict[str, Any]:
        """Where a single-step response's time goes, from the Temporal history's event times (median ms)."""
        b = Behaviour()
        await self.register(b)
        client = await self.temporal()
        samples: dict[str, list[float]] = {}
        for i in range(self.counts.single_n + 2):
            sent = time.time()
            r = await self.http.post(self.ours.base_url + "/v1/responses", json=responses_body(b),
                                     headers=self.ours.headers)
            answered = time.time()
            r.raise_for_status()
            handle = client.get_workflow_handle(r.json()["id"])
            await handle.result()  # the answer leaves when the row ends, before the workflow's own end
            phase = _phases((await handle.fetch_history()).events, sent, answered)
            if i >= 2:
                for k, v in phase.items():
                    samples.setdefault(k, []).append(v * 1000)
        return {k: statistics.median(v) for k, v in samples.items()}

    async def _open_responses(self) -> int:
        """Responses queued or in progress, as the API's /metrics counts them in PostgreSQL."""
        r = await self.http.get(self.ours.base_url + "/metrics")
        r.raise_for_status()
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in r.text.splitlines()
                   if line.startswith("agentrunner_responses_open{"))

    async def history(self) -> dict[str, Any]:
        """Temporal history bytes per response vs tool steps, with a small and a 100 kB answer."""
        client = await self.temporal()
        rows = []
        for steps in self.counts.history_steps:
            row: dict[str, Any] = {"steps": steps}
            for label, pad in (("bytes", 0), ("bytes_100kB_answer", HISTORY_PAD)):
                b = Behaviour(steps=steps, pad_bytes=pad)
                await self.register(b)
                r = await self.http.post(self.ours.base_url + "/v1/responses", json=responses_body(b),
                                         headers=self.ours.headers)
                r.raise_for_status()
                handle = client.get_workflow_handle(r.json()["id"])
                await handle.result()  # the answer leaves when the row ends, before the workflow's own end
                history = await handle.fetch_history()
                row[label] = History(events=history.events).ByteSize()
                row["events" if pad == 0 else "events_100kB_answer"] = len(history.events)
            rows.append(row)
        fit = linear_fit([float(r["steps"]) for r in rows], [float(r["bytes"]) for r in rows])
        return {"rows": rows, "fit": fit,
                "payload_leak_ratio": max(r["bytes_100kB_answer"] / r["bytes"] for r in rows)}

    async def mcp(self) -> dict[str, Any]:
        """An MCP tool loop of 1 and 3 calls through agentrunner (and the MCP-capable peers) vs the client running it
        against the same MCP server; the slopes give each call's cost, their difference what each adds per call."""
        rows: list[dict[str, Any]] = []
        servers = [self.ours, *(p for p in self.peers if p.name in MCP_PEERS)]
        async with mcp_server() as url:
            for steps in MCP_CALLS:
                b = Behaviour(steps=steps)
                await self.register(b)
                samples: dict[str, list[float]] = {t.name: [] for t in (*servers, self.direct)}
                for i in range(self.counts.steps_n + 1):  # alternating; the first round warms up
                    row = {t.name: await timed_mcp_response(self.http, t, b, url) for t in servers}
                    row["direct"] = await timed_direct_mcp_loop(self.http, self.upstream, b, url)
                    if i:
                        for k, v in row.items():
                            samples[k].append(v)
                rows.append({"calls": steps, **{k: summary(v) for k, v in samples.items()}})
            started = time.perf_counter()
            for step in range(self.counts.steps_n):
                await call_directly(url, step)
            one_call = (time.perf_counter() - started) * 1000 / self.counts.steps_n
        calls = MCP_CALLS[1] - MCP_CALLS[0]
        per_call = {k: (rows[1][k]["p50"] - rows[0][k]["p50"]) / calls for k in samples}
        return {"rows": rows, "per_call_ms": per_call, "direct_call_ms": one_call,
                "added_ms_per_call": per_call["agentrunner"] - per_call["direct"],
                **{f"{p.name}_added_ms_per_call": per_call[p.name] - per_call["direct"] for p in servers[1:]}}

    async def serialization(self) -> dict[str, Any]:
        """Building a response's wire objects as typed models, in this process (see bench.serialization)."""
        return serialization(self.counts.serialization_n)

    async def profile(self, stack: OurStack, out: Path) -> dict[str, Any]:
        """py-spy on the API and one worker while a closed loop saturates them."""
        stack.scale(1)
        await self._wait_for_pollers(1)
        b = Behaviour()
        await self.register(b)
        seconds = self.counts.window_s
        py_spy = str(Path(sys.executable).parent / "py-spy")
        spies = {name: subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                         "--rate", "200", "--format", "raw", "--nonblocking", "--gil",
                                         "-o", str(out / f"profile-{name}.txt")], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
                 for name, pid in stack.pids().items()}
        loop = await closed_loop(lambda: timed_response(self.http, self.ours, b), self.counts.concurrency,
                                 seconds, warmup=0)
        for spy in spies.values():
            spy.wait(timeout=60)
        return {"per_second": loop.per_second, "errors": loop.errors,
                "files": [f"profile-{name}.txt" for name in spies]}

    async def _wait_for_pollers(self, workers: int, timeout: float = 60) -> None:
        """Wait until `workers` distinct worker processes poll the activity task queue."""
        client = await self.temporal()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace=self.settings.temporal_namespace, task_queue=TaskQueue(name=self.settings.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
            if len({p.identity for p in described.pollers}) >= workers:
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{workers} workers not polling after {timeout}s")


def _cpu(stack: OurStack) -> dict[str, float]:
    """CPU seconds used so far by the API, all workers together, Temporal, PostgreSQL and the whole machine."""
    return cpu_split(stack.pids(), stack.services)


def _cpu_per_response(loop: LoopResult) -> dict[str, float]:
    """CPU ms per response of each part over a loop probed with `_cpu`, and the rest of the machine's."""
    spent = loop.probed_ms_per_request()
    return {**spent, "rest": spent["machine"] - spent["api"] - spent["workers"] - spent["temporal"]
            - spent["postgres"]}


def _ratios(stats: dict[str, dict[str, float]], q: str) -> dict[str, float]:
    """agentrunner ÷ direct (and ÷ each peer; each peer ÷ direct and its added ms) for one quantile."""
    out = {f"ratio_vs_direct_{q}": stats["agentrunner"][q] / stats["direct"][q],
           f"added_ms_{q}": stats["agentrunner"][q] - stats["direct"][q]}
    for peer in stats.keys() - {"agentrunner", "direct"}:
        out[f"ratio_vs_{peer}_{q}"] = stats["agentrunner"][q] / stats[peer][q]
        out[f"{peer}_ratio_vs_direct_{q}"] = stats[peer][q] / stats["direct"][q]
        out[f"{peer}_added_ms_{q}"] = stats[peer][q] - stats["direct"][q]
    return out


def _phases(events: Any, sent: float, answered: float) -> dict[str, float]:
    """Seconds per phase of a single-step response, from its history: the step is the model call's local activity
    marker (its schedule and completion times), or, in a history from before, its activity's events."""
    at = [(e.event_type, e.event_time.ToDatetime(tzinfo=UTC).timestamp()) for e in events]
    task = [t for kind, t in at if kind in (EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                                            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)]
    step = [t for kind, t in at if kind in (EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
                                            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)]
    for e in events:
        if e.marker_recorded_event_attributes.marker_name == "core_local_activity":
            data = json.loads(e.marker_recorded_event_attributes.details["data"].payloads[0].data)
            if data["activity_type"] == "call_model":
                step = [data["original_schedule_time"]["seconds"] + data["original_schedule_time"]["nanos"] / 1e9,
                        data["complete_time"]["seconds"] + data["complete_time"]["nanos"] / 1e9]
    return {"api_to_workflow_start": at[0][1] - sent, "start_to_first_workflow_task": task[1] - task[0],
            "first_workflow_task_to_model_call": step[0] - task[1], "model_call_step": step[1] - step[0],
            "model_call_end_to_api_answer": answered - step[1], "total": answered - sent}
