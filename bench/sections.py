"""The measured sections of a benchmark run: each sends its workload to agentrunner and its references."""

import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC
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
    Target,
    closed_loop,
    responses_body,
    summary,
    timed_direct,
    timed_response,
    timed_stream,
)
from bench.serialization import serialization
from bench.stack import OurStack, cpu_seconds, machine_cpu_seconds, rss_bytes
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
HISTORY_PAD = 100_000


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least-squares line y = intercept + slope·x, with r²."""
    slope, intercept = statistics.linear_regression(xs, ys)
    # For a least-squares line r² is Pearson's r squared; r is undefined for flat ys, which the line fits exactly.
    r2 = statistics.correlation(xs, ys) ** 2 if len(set(ys)) > 1 else 1.0
    return {"intercept": intercept, "slope": slope, "r2": r2}


class Bench:
    """One run: the targets, the counts and what has been measured so far."""

    def __init__(self, http: httpx.AsyncClient, ours: Target, upstream: str, peer: Target | None,
                 counts: Counts, admin: tuple[str, str], settings: Settings) -> None:
        self.http, self.ours, self.upstream, self.peer, self.counts = http, ours, upstream, peer, counts
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
        """Single-step blocking responses: ours, the peer's and the bare upstream call, interleaved."""
        out: dict[str, Any] = {}
        for latency, n in ((0, self.counts.single_n), (500, self.counts.slow_n)):
            b = Behaviour(latency_ms=latency)
            await self.register(b)
            samples: dict[str, list[float]] = {"agentrunner": [], "direct": [], **({"peer": []} if self.peer else {})}
            for i in range(n + 2):  # the first two rounds warm connections and caches
                row = {"agentrunner": await timed_response(self.http, self.ours, b),
                       "direct": await timed_direct(self.http, self.upstream, b)}
                if self.peer:
                    row["peer"] = await timed_response(self.http, self.peer, b)
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
        fits = {k: linear_fit(xs, [r[k]["p50"] for r in rows]) for k in ("agentrunner", "direct")}
        return {"rows": rows, "fit_p50": fits,
                "added_ms_per_step": fits["agentrunner"]["slope"] - fits["direct"]["slope"]}

    async def streaming(self) -> dict[str, Any]:
        """First token → first client delta, and the gap between deltas, for a 20-token answer at 20 ms/token."""
        await self.register(STREAM)
        targets = [(self.ours, False), (self.direct, True), *([(self.peer, False)] if self.peer else [])]
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
        return {"behaviour": asdict(STREAM), "first_token_ms": {**first_stats, **_ratios(first_stats, "p50")},
                "inter_delta_gap_ms": {**gap_stats, **_ratios(gap_stats, "p50")},
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
            before, after = loop.probes
            spent = {k: (v - before[k]) * 1000 / max(loop.completed, 1) for k, v in after.items()}
            rows.append({"workers": n, "per_second": loop.per_second, "errors": loop.errors,
                         "cpu_ms_per_response": {**spent, "rest": spent["machine"] - spent["api"] - spent["workers"]}})
        direct = await closed_loop(lambda: timed_direct(self.http, self.upstream, b), self.counts.concurrency,
                                   self.counts.window_s / 3)
        out: dict[str, Any] = {"concurrency": self.counts.concurrency, "window_s": self.counts.window_s,
                               "rows": rows, "direct_per_second": direct.per_second}
        if self.peer:
            peer = self.peer
            got = await closed_loop(lambda: timed_response(self.http, peer, b), self.counts.concurrency,
                                    self.counts.window_s / 3)
            out["peer_per_second"] = got.per_second
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
            history = await client.get_workflow_handle(r.json()["id"]).fetch_history()
            at = [(e.event_type, e.event_time.ToDatetime(tzinfo=UTC).timestamp()) for e in history.events]
            wft = [t for kind, t in at if kind in (EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
                                                   EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)]
            act = [t for kind, t in at if kind in (EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
                                                   EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)]
            phase = {"api_to_workflow_start": at[0][1] - sent, "first_workflow_task": wft[1] - wft[0],
                     "model_call_activity": act[1] - act[0], "last_workflow_task": wft[-1] - wft[-2],
                     "workflow_end_to_api_answer": answered - at[-1][1], "total": answered - sent}
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
                history = await client.get_workflow_handle(r.json()["id"]).fetch_history()
                row[label] = History(events=history.events).ByteSize()
                row["events" if pad == 0 else "events_100kB_answer"] = len(history.events)
            rows.append(row)
        fit = linear_fit([float(r["steps"]) for r in rows], [float(r["bytes"]) for r in rows])
        return {"rows": rows, "fit": fit,
                "payload_leak_ratio": max(r["bytes_100kB_answer"] / r["bytes"] for r in rows)}

    async def mcp(self) -> dict[str, Any]:
        """An MCP tool loop of 1 and 3 calls through agentrunner vs the client running it against the same MCP
        server; the slopes give each call's cost, their difference what agentrunner adds per call."""
        rows: list[dict[str, Any]] = []
        async with mcp_server() as url:
            for steps in (1, 3):
                b = Behaviour(steps=steps)
                await self.register(b)
                ours, direct = [], []
                for i in range(self.counts.steps_n + 1):  # alternating; the first round warms up
                    mine = await timed_mcp_response(self.http, self.ours, b, url)
                    theirs = await timed_direct_mcp_loop(self.http, self.upstream, b, url)
                    if i:
                        ours.append(mine)
                        direct.append(theirs)
                rows.append({"calls": steps, "agentrunner": summary(ours), "direct": summary(direct)})
            started = time.perf_counter()
            for step in range(self.counts.steps_n):
                await call_directly(url, step)
            one_call = (time.perf_counter() - started) * 1000 / self.counts.steps_n
        per_call = {k: (rows[1][k]["p50"] - rows[0][k]["p50"]) / 2 for k in ("agentrunner", "direct")}
        return {"rows": rows, "per_call_ms": per_call, "direct_call_ms": one_call,
                "added_ms_per_call": per_call["agentrunner"] - per_call["direct"]}

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
    """CPU seconds used so far by the API, all workers together, and the whole machine."""
    pids = stack.pids()
    return {"api": cpu_seconds(pids.pop("api")), "workers": sum(cpu_seconds(p) for p in pids.values()),
            "machine": machine_cpu_seconds()}


def _ratios(stats: dict[str, dict[str, float]], q: str) -> dict[str, float]:
    """agentrunner ÷ direct (and ÷ peer) for one quantile."""
    out = {f"ratio_vs_direct_{q}": stats["agentrunner"][q] / stats["direct"][q],
           f"added_ms_{q}": stats["agentrunner"][q] - stats["direct"][q]}
    if "peer" in stats:
        out[f"ratio_vs_peer_{q}"] = stats["agentrunner"][q] / stats["peer"][q]
        out[f"peer_ratio_vs_direct_{q}"] = stats["peer"][q] / stats["direct"][q]
    return out
