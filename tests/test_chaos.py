"""The chaos harness (`bench.chaos`) at a small size: 30 background responses through a 3-step loop with two
server-side tools, one of two worker processes SIGKILLed every 2 s, the upstream failing 30 % of its requests in
bursts. Every response completes, exactly once: no item duplicated, every tool re-execution under its call's
Idempotency-Key, no 5xx answered to a client."""

from pathlib import Path

import pytest

from bench.chaos import CALLS_PER_RESPONSE, ChaosConfig, run_chaos

# The harness starts its own embedded PostgreSQL, Temporal dev server, API, workers and upstream (as bench does).
pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


async def test_small_chaos_run_completes_every_response_exactly_once(tmp_path: Path) -> None:
    config = ChaosConfig(responses=30, kill_interval=2.0, fault_rate=0.3, restart_postgres=0, restart_api=0,
                         time_limit=180)
    r = await run_chaos(config, tmp_path)
    report = (tmp_path / "chaos.md").read_text()  # the figures and each stuck or failed response, on failure
    assert r.kills >= 3 and sum(r.upstream["faults"].values()) > 0, "the chaos happened"
    assert (r.completed, len(r.failed), len(r.stuck)) == (30, 0, 0), report
    assert r.item_problems == {} and r.responses_in_db == 30, report
    assert r.distinct_calls == 30 * CALLS_PER_RESPONSE and r.tool_executions == r.distinct_calls + r.reexecutions
    assert r.keyless_calls == 0 and r.foreign_keys == [] and r.unexecuted_calls == [], report
    assert r.client_5xx == {} and r.client_failures == {}, report
    assert r.ok
