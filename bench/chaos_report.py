"""The figures of a chaos run (`bench.chaos`) and their markdown, as bench/report.py is for `make bench`."""

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.upstream import CHAOS_PLAN, CHAOS_TOOLS

CALLS_PER_RESPONSE = sum(len(turn) for turn in CHAOS_PLAN)
ITEMS_PER_RESPONSE = CALLS_PER_RESPONSE + 1  # an mcp_call item per call, and the answer


@dataclass
class ChaosConfig:
    """What one chaos run does (the defaults are the full size `make chaos` runs)."""

    responses: int = 200
    kill_interval: float = 2.0  # seconds between two worker SIGKILLs; 0: none
    fault_rate: float = 0.3  # share of the upstream's chat requests that fail
    fault_burst: int = 3  # mean length of a run of upstream failures
    restart_postgres: int = 1
    restart_api: int = 0
    pg_downtime: float = 3.0  # seconds PostgreSQL stays down at each restart
    time_limit: float = 900.0  # seconds from the first create; what is open then is stuck
    workers: int = 2
    poll_interval: float = 2.0
    concurrency: int = 16  # client requests in flight at once
    seed: int = 0


@dataclass
class ChaosResult:
    """The figures of one run; `ok` is its verdict."""

    config: ChaosConfig
    settings: dict[str, str]
    completed: int
    failed: dict[str, str]  # response id (or create #i) → status and error
    stuck: dict[str, str]  # response id (or create #i) → last status seen, workflow status, steps
    tool_executions: int
    distinct_calls: int  # distinct Idempotency-Keys the tool server saw
    reexecutions: int  # executions beyond the first of each key
    keyless_calls: int  # executions without an Idempotency-Key
    foreign_keys: list[str]  # keys of completed responses that none of their mcp_call items has
    unexecuted_calls: list[str]  # mcp_call items of completed responses the tool server never saw
    item_problems: dict[str, str]  # response id → what is duplicated or wrong in its output
    responses_in_db: int
    client_5xx: dict[str, int]  # 5xx answers the API gave clients (SDK retries included), by status
    client_5xx_samples: list[str]
    client_failures: dict[str, int]  # client requests that failed after the SDK's retries, by error
    wall_seconds: float
    response_seconds: dict[str, float]  # create → seen terminal: p50, p90, max
    kills: int
    restarts: dict[str, list[float]]  # "postgres" / "api" → seconds into the run
    upstream: dict[str, Any]  # chat requests served and faults injected by status
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def same_key(self) -> bool:
        """Every tool re-execution carried its call's key: none without a key, none under a key no item has."""
        return not (self.keyless_calls or self.foreign_keys or self.unexecuted_calls)

    @property
    def ok(self) -> bool:
        """All completed, each exactly once; the only 5xx allowed is the 503 + Retry-After of an outage."""
        return (self.completed == self.config.responses and not self.item_problems and self.same_key
                and self.responses_in_db == self.config.responses and set(self.client_5xx) <= {"503"})


def spread(xs: list[float]) -> dict[str, float]:
    """p50, p90 and max of some durations, in seconds."""
    xs = sorted(xs) or [math.nan]
    return {"p50": round(statistics.median(xs), 1), "p90": round(xs[int(0.9 * (len(xs) - 1))], 1),
            "max": round(xs[-1], 1)}


def _count(d: dict[str, int]) -> str:
    return f"{sum(d.values())}" + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(d.items()))})" if d else "")


def markdown(r: ChaosResult) -> str:
    """The run as a markdown table, then what went wrong, response by response."""
    c, m = r.config, r.machine
    kills = f"one of {c.workers} workers SIGKILLed every {c.kill_interval:g} s" if c.kill_interval else "no kills"
    restarts = "; ".join(f"{what} at {', '.join(f'{t:.0f} s' for t in at)}" for what, at in r.restarts.items() if at)
    lines = [
        f"Chaos run {m.get('date', '')} on {m.get('cores', '?')} cores: {c.responses} background responses "
        f"({len(CHAOS_PLAN) + 1} model calls, {CALLS_PER_RESPONSE} server-side tool calls over {len(CHAOS_TOOLS)} "
        f"tools each), {kills}, the upstream failing "
        f"{c.fault_rate:.0%} of its requests in bursts (429 with Retry-After, 500), {c.restart_postgres} PostgreSQL "
        f"restart(s) ({c.pg_downtime:g} s down), {c.restart_api} API restart(s); limit {c.time_limit:g} s. "
        f"Settings: {', '.join(f'{k}={v}' for k, v in r.settings.items())}.", "",
        "| figure | value |", "|---|---|",
        f"| completed / failed / stuck | {r.completed} / {len(r.failed)} / {len(r.stuck)} |",
        f"| wall time | {r.wall_seconds:.0f} s |",
        "| a response's time, create → seen terminal (p50 / p90 / max) | "
        + " / ".join(f"{v:.0f} s" for v in r.response_seconds.values()) + " |",
        f"| worker kills / restarts | {r.kills} / {restarts or 'none'} |",
        f"| upstream chat requests / faults injected | {r.upstream['chat_requests']} / "
        f"{_count(r.upstream['faults'])} |",
        f"| tool executions / distinct calls (keys) | {r.tool_executions} / {r.distinct_calls} |",
        f"| tool re-executions / all with the call's key | {r.reexecutions} / {'yes' if r.same_key else '**no**'} |",
        f"| calls without a key / keys no item has / items never executed | {r.keyless_calls} / "
        f"{len(r.foreign_keys)} / {len(r.unexecuted_calls)} |",
        f"| responses with duplicated or wrong items | {len(r.item_problems)} |",
        f"| responses in PostgreSQL | {r.responses_in_db} |",
        f"| 5xx answers seen by clients | {_count(r.client_5xx)} |",
        f"| client requests failed after the SDK's retries | {_count(r.client_failures)} |",
        "", f"**{'PASS' if r.ok else 'FAIL'}** (pass: every response completed, exactly once, and no 5xx but an "
        "outage's 503 reached a client).",
    ]
    for title, entries in (("Failed", r.failed), ("Stuck", r.stuck), ("Duplicated or wrong items", r.item_problems),
                           ("Keys no item has", dict.fromkeys(r.foreign_keys, "")),
                           ("Items never executed", dict.fromkeys(r.unexecuted_calls, "")),
                           ("5xx samples", dict.fromkeys(r.client_5xx_samples, ""))):
        if entries:
            lines += ["", f"{title} ({len(entries)}, first 20):", "",
                      *(f"- `{k}`" + (f": {v}" if v else "") for k, v in list(entries.items())[:20])]
    return "\n".join(lines) + "\n"
