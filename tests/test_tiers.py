"""Service tiers and fairness on a saturated worker (two slots: a response in a step holds one, the rest queue up)."""

import time
from typing import Any

from tests.conftest import Stack, StackFactory
from tests.helpers import create, eventually
from tests.scripted_upstream import Reply


async def _finish_times(stack: Stack, keyed: list[tuple[str, dict[str, Any]]], started: float) -> dict[str, float]:
    finished: dict[str, float] = {}

    async def all_done() -> bool:
        for key, body in keyed:
            if body["id"] not in finished:
                got = (await stack.call("GET", f"/v1/responses/{body['id']}", key)).json()
                if got["status"] == "completed":
                    finished[body["id"]] = time.monotonic() - started
        return len(finished) == len(keyed)

    await eventually(all_done, timeout=60, interval=0.05, what="every response done")
    return finished


async def _backlog_then_one(stack: Stack, backlog_key: str, backlog_tier: str, late_key: str,
                            late_tier: str) -> tuple[float, list[float]]:
    model = await stack.model(Reply(text="done", delay=0.3))
    backlog = [await create(stack, backlog_key, model=model, input=f"bulk {i}", background=True,
                            service_tier=backlog_tier) for i in range(10)]
    started = time.monotonic()
    late = await create(stack, late_key, model=model, input="late", background=True, service_tier=late_tier)
    finished = await _finish_times(stack, [*((backlog_key, b) for b in backlog), (late_key, late)], started)
    return finished[late["id"]], sorted(finished[b["id"]] for b in backlog)


async def test_priority_overtakes_a_flex_backlog_of_the_same_owner(make_stack: StackFactory) -> None:
    async with make_stack(worker_slots=2) as stack:
        key = await stack.new_key()
        late, backlog = await _backlog_then_one(stack, key, "flex", key, "priority")
        overtaken = sum(1 for t in backlog if t > late)
        assert overtaken >= 5, (late, backlog)


async def test_one_owners_backlog_does_not_starve_another_owner(make_stack: StackFactory) -> None:
    async with make_stack(worker_slots=2) as stack:
        busy, other = await stack.new_key(), await stack.new_key()
        late, backlog = await _backlog_then_one(stack, busy, "default", other, "default")
        overtaken = sum(1 for t in backlog if t > late)
        assert overtaken >= 5, (late, backlog)
