"""Chaos run: background responses through a 3-step loop with two server-side tools while worker processes are
SIGKILLed on an interval, the upstream fails a share of its requests in bursts and, optionally, PostgreSQL and the
API restart; then checks that every response completed exactly once.

`make chaos` runs `python -m bench.chaos` at full size (200 responses, one of two workers SIGKILLed every 2 s, 30 %
upstream faults, one PostgreSQL restart), prints a table and writes bench/results/chaos.md and chaos.json. Everything
listens on 127.0.0.1 and the run is bounded: past `--time-limit` the responses still open are reported stuck and the
exit status is 1 (as it is for any failed check). `tests/test_chaos.py` runs it small.
"""

import argparse
import asyncio
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import openai
import psycopg
from temporalio.api.enums.v1 import PendingWorkflowTaskState

from bench.chaos_report import CALLS_PER_RESPONSE, ITEMS_PER_RESPONSE, ChaosConfig, ChaosResult, markdown, spread
from bench.run import machine
from bench.stack import ROOT, OurStack, Upstream
from bench.upstream import CHAOS_MODEL, CHAOS_TOOLS, chaos_answer
from core.temporal import connect_temporal

OPEN = ("queued", "in_progress")
# The registered tools, named: the server fills in their parameters (the SDK's type wants them given, hence Any).
TOOLS: list[Any] = [{"type": "function", "name": t} for t in CHAOS_TOOLS]
# Crash recovery tuned as the crash tests tune it, unless the environment says otherwise: a killed worker's cached
# workflows move on after 1 s (not 10), its in-flight step after 2 s (not 5), step retries start at 0.2 s.
STACK_ENV = {"AGENTRUNNER_WORKER_STICKY_TIMEOUT_SECONDS": "1", "AGENTRUNNER_STEPS__HEARTBEAT_TIMEOUT_SECONDS": "2",
             "AGENTRUNNER_STEPS__RETRY_INITIAL_SECONDS": "0.2", "AGENTRUNNER_STEPS__RETRY_MAX_SECONDS": "2"}


class Chaos:
    """One run's clients, chaos and bookkeeping against a started stack."""

    def __init__(self, config: ChaosConfig, stack: OurStack, upstream: Upstream) -> None:
        self.c, self.stack, self.upstream = config, stack, upstream
        self.run_id = uuid.uuid4().hex[:8]
        self.ids: dict[int, str] = {}
        self.last: dict[int, str] = {}  # response index → last status seen
        self.final: dict[int, dict[str, Any]] = {}  # response index → its terminal Response object
        self.seconds: list[float] = []  # each terminal response's time from its create to the poll that saw it end
        self.rejected: dict[int, str] = {}  # response index → the 4xx its create got
        self.http_5xx: Counter[str] = Counter()
        self.samples: list[str] = []
        self.failures: Counter[str] = Counter()
        self.kills = 0
        self.restarts: dict[str, list[float]] = {"postgres": [], "api": []}
        self.stop = asyncio.Event()
        self.start = time.monotonic()

    async def run(self) -> ChaosResult:
        """Create every response, run the chaos until all are terminal or the time limit, then check."""
        # The SDK's own HTTP client class (openai 3 ships a fork of httpx), with a hook that sees every answer.
        http = openai.DefaultAsyncHttpxClient(event_hooks={"response": [self._seen]}, timeout=30)
        client = openai.AsyncOpenAI(base_url=self.stack.base_url + "/v1", api_key=self.stack.api_key, http_client=http)
        sem = asyncio.Semaphore(self.c.concurrency)
        async with http:
            self.start = time.monotonic()
            chaos = [asyncio.create_task(t) for t in (self._kill_workers(), self._restart(), self._progress())]
            clients = [asyncio.create_task(self._one(client, sem, i)) for i in range(self.c.responses)]
            done, pending = await asyncio.wait(clients, timeout=self.c.time_limit)
            wall = time.monotonic() - self.start
            for task in pending:
                task.cancel()
            self.stop.set()
            await asyncio.gather(*pending, *chaos, return_exceptions=True)  # a restart under way finishes first
            for task in done:
                task.result()  # a harness bug surfaces here rather than as a stuck response
            stuck = await self._stuck()
        return await self._check(wall, stuck)

    async def _seen(self, response: Any) -> None:  # the SDK's httpx Response
        if response.status_code >= 500:
            self.http_5xx[str(response.status_code)] += 1
            if len(self.samples) < 10:
                await response.aread()
                self.samples.append(f"{response.status_code} {response.request.method} {response.request.url.path} "
                                    f"at {time.monotonic() - self.start:.1f} s: {response.text[:200]}")

    async def _one(self, client: openai.AsyncOpenAI, sem: asyncio.Semaphore, i: int) -> None:
        # The same Idempotency-Key on every attempt: a create the API answered too late attaches to its response.
        key = f"chaos-{self.run_id}-{i}"
        started = time.monotonic()
        while True:
            try:
                async with sem:
                    r = await client.responses.create(model=CHAOS_MODEL, input=f"chaos {i}", tools=TOOLS,
                                                      background=True, extra_headers={"Idempotency-Key": key})
                break
            except (openai.APIConnectionError, openai.InternalServerError) as exc:
                self.failures[f"create: {exc.__class__.__name__}"] += 1
            except openai.APIError as exc:  # a 4xx or an answer the SDK cannot read: sending it again will not help
                self.failures[f"create: {exc.__class__.__name__}"] += 1
                self.rejected[i] = f"create failed: {exc.__class__.__name__}: {exc.message}"
                return
            await asyncio.sleep(self.c.poll_interval)
        self.ids[i], self.last[i] = r.id, str(r.status)
        while r.status in OPEN:
            await asyncio.sleep(self.c.poll_interval)
            try:
                async with sem:
                    r = await client.responses.retrieve(r.id)
            except openai.APIError as exc:
                self.failures[f"retrieve: {exc.__class__.__name__}"] += 1
                continue
            self.last[i] = str(r.status)
        self.final[i] = r.model_dump(mode="json")
        self.seconds.append(time.monotonic() - started)

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
            return True
        except TimeoutError:
            return False

    async def _kill_workers(self) -> None:
        while self.c.kill_interval and not await self._stopped_within(self.c.kill_interval):
            self.stack.kill_worker(self.kills % len(self.stack.workers))  # the oldest one, in turn
            self.kills += 1

    async def _restart(self) -> None:
        """Restart k of n once k/(n+1) of the responses are terminal, so it lands with the rest in flight (or of the
        time limit, if that comes first: responses that do not end must not keep it from happening)."""
        plan = ["postgres"] * self.c.restart_postgres + ["api"] * self.c.restart_api
        for n, what in enumerate(plan, 1):
            share = n / (len(plan) + 1)
            while (len(self.final) < self.c.responses * share
                   and time.monotonic() - self.start < self.c.time_limit * share):
                if await self._stopped_within(0.2):
                    return
            at = round(time.monotonic() - self.start, 1)
            print(f"{at:6.1f} s  restarting {what}", flush=True)
            if what == "postgres":
                await asyncio.to_thread(self.stack.restart_postgres, self.c.pg_downtime)
            else:
                await asyncio.to_thread(self.stack.restart_api)
            self.restarts[what].append(at)

    async def _progress(self) -> None:
        while not await self._stopped_within(10):
            print(f"{time.monotonic() - self.start:6.1f} s  {len(self.final)}/{self.c.responses} terminal, "
                  f"{self.kills} kills, {sum(self.http_5xx.values())} 5xx", flush=True)

    async def _stuck(self) -> dict[str, str]:
        """What each response still open at the end was doing: last status, its workflow's status, its steps."""
        stuck = {f"create #{i}": "never created" for i in range(self.c.responses)
                 if i not in self.ids and i not in self.rejected}
        open_ids = [(i, rid) for i, rid in self.ids.items() if i not in self.final]
        temporal = await connect_temporal(self.stack.settings) if open_ids else None
        headers = {"Authorization": f"Bearer {self.stack.api_key}"}
        async with httpx.AsyncClient(timeout=10, headers=headers) as http:
            for i, rid in open_ids:
                detail = f"last seen {self.last[i]}"
                try:
                    assert temporal is not None
                    desc = await temporal.get_workflow_handle(rid).describe()
                    detail += f"; workflow {desc.status.name if desc.status else '?'}"
                    task = desc.raw_description.pending_workflow_task  # a task lost again and again shows here
                    if task.attempt:
                        state = PendingWorkflowTaskState.Name(task.state).removeprefix("PENDING_WORKFLOW_TASK_STATE_")
                        since = time.time() - task.scheduled_time.ToSeconds()
                        detail += f", workflow task attempt {task.attempt} {state}, scheduled {since:.0f} s ago"
                    steps = (await http.get(f"{self.stack.base_url}/v1/responses/{rid}/steps")).json()["data"]
                    detail += "; steps " + ", ".join(f"{s['kind']}:{s['state']}#{s['attempt']}" for s in steps)
                except Exception as exc:  # evidence is best effort; the response is stuck either way
                    detail += f"; ({exc.__class__.__name__}: {exc})"
                stuck[rid] = detail
        return stuck

    async def _check(self, wall: float, stuck: dict[str, str]) -> ChaosResult:
        """Compare the final outputs, PostgreSQL's item rows and the tool server's counts."""
        stats = await asyncio.to_thread(self.upstream.stats)
        async with await psycopg.AsyncConnection.connect(str(self.stack.settings.database_url)) as conn:
            rows = await (await conn.execute(
                "SELECT response_id, count(*), count(DISTINCT id) FROM items WHERE direction = 'output' "
                "GROUP BY response_id")).fetchall()
            in_db = int((await (await conn.execute("SELECT count(*) FROM responses")).fetchone() or [0])[0])
        db_items = {rid: (int(n), int(distinct)) for rid, n, distinct in rows}
        completed = {r["id"]: r for r in self.final.values() if r["status"] == "completed"}
        failed = {r["id"]: f"{r['status']}: {r.get('error') or r.get('incomplete_details')}"
                  for r in self.final.values() if r["status"] != "completed"}
        failed |= {f"create #{i}": why for i, why in self.rejected.items()}
        problems = {rid: p for rid, r in completed.items() if (p := item_problems(r, db_items.get(rid, (0, 0))))}
        problems |= {rid: f"{n} output rows with {distinct} distinct ids in PostgreSQL"  # the unfinished ones too
                     for rid, (n, distinct) in db_items.items() if rid not in completed and n != distinct}
        hits: Counter[str] = Counter()
        for tool, key, n in stats["tool_calls"]:
            if tool in CHAOS_TOOLS:
                hits[key] += n
        keyless = hits.pop("", 0)
        expected = {f"{rid}/{item['id']}" for rid, r in completed.items() for item in r["output"]
                    if item["type"] == "mcp_call"}
        return ChaosResult(
            config=self.c, settings={k: self.stack.env[k] for k in STACK_ENV}, completed=len(completed),
            failed=failed, stuck=stuck, tool_executions=sum(hits.values()) + keyless, distinct_calls=len(hits),
            reexecutions=sum(n - 1 for n in hits.values()), keyless_calls=keyless,
            foreign_keys=sorted(k for k in hits if k.split("/")[0] in completed and k not in expected),
            unexecuted_calls=sorted(expected - hits.keys()), item_problems=problems, responses_in_db=in_db,
            client_5xx=dict(self.http_5xx), client_5xx_samples=self.samples, client_failures=dict(self.failures),
            wall_seconds=round(wall, 1), response_seconds=spread(self.seconds), kills=self.kills,
            restarts=self.restarts,
            upstream={"chat_requests": stats["chat_requests"], "faults": stats["faults"]}, machine=machine())


def item_problems(r: dict[str, Any], in_db: tuple[int, int]) -> str:
    """What is duplicated or wrong in a completed response's output ("" when nothing): repeated item or call ids,
    other than one mcp_call per planned call and one answer, an answer that saw other than one result per call, or
    other than that many distinct item rows in PostgreSQL."""
    out = r["output"]
    found = []
    ids = [item["id"] for item in out]
    if len(set(ids)) != len(ids):
        found.append(f"repeated item ids {sorted(k for k, n in Counter(ids).items() if n > 1)}")
    call_ids = [item["call_id"] for item in out if item["type"] == "function_call"]
    if len(set(call_ids)) != len(call_ids):
        found.append("repeated function_call call_id")
    kinds = Counter(item["type"] for item in out)
    if kinds != {"mcp_call": CALLS_PER_RESPONSE, "message": 1}:
        found.append(f"items {dict(kinds)}")
    failed_calls = [item.get("error") for item in out if item["type"] == "mcp_call" and item.get("error")]
    if failed_calls:
        found.append(f"failed tool calls {failed_calls}")
    text = "".join(p["text"] for item in out if item["type"] == "message" for p in item["content"])
    if text != chaos_answer(CALLS_PER_RESPONSE):
        found.append(f"answer {text!r}")
    if in_db != (ITEMS_PER_RESPONSE, ITEMS_PER_RESPONSE):
        found.append(f"{in_db[0]} output rows with {in_db[1]} distinct ids in PostgreSQL")
    return "; ".join(found)


async def run_chaos(config: ChaosConfig, out: Path | None = None) -> ChaosResult:
    """Start the stack and the scripted upstream (with its tool server), run, check, stop everything; write
    chaos.md and chaos.json into `out` when given."""
    upstream = Upstream.start(None, "--fault-rate", str(config.fault_rate), "--fault-burst", str(config.fault_burst),
                              "--seed", str(config.seed))
    stack = None
    try:
        stack = await OurStack.start(config.workers, env={k: os.environ.get(k, v) for k, v in STACK_ENV.items()})
        await register(stack, upstream.url)
        result = await Chaos(config, stack, upstream).run()
    finally:
        if stack:
            stack.stop()
        upstream.proc.terminate()
        upstream.proc.wait(timeout=15)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "chaos.json").write_text(json.dumps({**asdict(result), "ok": result.ok}, indent=2) + "\n")
        (out / "chaos.md").write_text(markdown(result))
    return result


async def register(stack: OurStack, upstream: str) -> None:
    """The chaos model and its two tools, through the admin API."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {stack.settings.admin_token}"}) as admin:
        bodies = [("/admin/models", {"alias": CHAOS_MODEL, "base_url": upstream + "/v1"}),
                  *(("/admin/tools", {"name": t, "url": f"{upstream}/tools/{t}", "description": "chaos tool",
                                      "parameters": {"type": "object", "properties": {"step": {"type": "integer"}}},
                                      "timeout_seconds": 10}) for t in CHAOS_TOOLS)]
        for path, body in bodies:
            (await admin.post(path, json=body)).raise_for_status()


def main() -> None:
    """Parse arguments, run, print the table, write bench/results/chaos.md and chaos.json; exit 1 on FAIL."""
    d = ChaosConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--responses", type=int, default=d.responses)
    p.add_argument("--kill-interval", type=float, default=d.kill_interval, help="seconds between SIGKILLs; 0: none")
    p.add_argument("--fault-rate", type=float, default=d.fault_rate, help="share of upstream requests that fail")
    p.add_argument("--fault-burst", type=int, default=d.fault_burst, help="mean length of a run of upstream failures")
    p.add_argument("--restart-postgres", type=int, default=d.restart_postgres, metavar="N", help="PostgreSQL restarts")
    p.add_argument("--restart-api", type=int, default=d.restart_api, metavar="N", help="API restarts (SIGKILL)")
    p.add_argument("--pg-downtime", type=float, default=d.pg_downtime, help="seconds PostgreSQL stays down")
    p.add_argument("--time-limit", type=float, default=d.time_limit, help="seconds until open responses are stuck")
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--poll-interval", type=float, default=d.poll_interval)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = vars(p.parse_args())
    out = args.pop("out")
    result = asyncio.run(run_chaos(ChaosConfig(**args), out))
    print(markdown(result))
    raise SystemExit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
