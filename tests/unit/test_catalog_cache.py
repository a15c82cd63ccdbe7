"""The catalog cache keeps what a lookup found until a change is heard of, and nothing while it could miss one."""

import asyncio
from typing import Any

import pytest

from activities.catalog_cache import CatalogCache, cached
from activities.notifier import EventNotifier
from db.events import CATALOG_CHANNEL

pytestmark = pytest.mark.timeout(10)


def _cache(max_age: float = 60.0) -> tuple[CatalogCache, EventNotifier]:
    notifier = EventNotifier("postgresql://unused")
    notifier.listening = True  # as once its LISTEN connection is up
    return CatalogCache(notifier, max_age), notifier


class Loads:
    """A lookup that counts how often it ran and finds what it is told to."""

    def __init__(self, value: Any) -> None:
        self.value, self.count = value, 0

    async def __call__(self) -> Any:
        self.count += 1
        return self.value


async def test_a_found_value_is_kept_until_a_catalog_change_is_heard_of() -> None:
    cache, notifier = _cache()
    load = Loads("owner-a")
    assert [await cache.get("k", load) for _ in range(3)] == ["owner-a"] * 3 and load.count == 1
    notifier._deliver(CATALOG_CHANNEL, "")  # another process's change
    load.value = "owner-b"
    assert await cache.get("k", load) == "owner-b" and load.count == 2
    notifier._deliver("response_events", "resp_x")  # other channels change nothing
    assert await cache.get("k", load) == "owner-b" and load.count == 2


async def test_nothing_found_is_never_kept() -> None:
    cache, _ = _cache()
    for missing in (None, {}):
        load = Loads(missing)
        await cache.get(("missing", repr(missing)), load)
        await cache.get(("missing", repr(missing)), load)
        assert load.count == 2


async def test_nothing_is_kept_while_not_listening_nor_when_turned_off() -> None:
    cache, notifier = _cache()
    notifier.listening = False
    load = Loads("x")
    await cache.get("k", load)
    await cache.get("k", load)
    assert load.count == 2
    off, _ = _cache(max_age=0)
    await off.get("k", load)
    await off.get("k", load)
    assert load.count == 4
    assert await cached(None, "k", load) == "x" and load.count == 5  # no cache at all (the CLI)


async def test_a_change_heard_of_during_a_lookup_keeps_its_result_out() -> None:
    cache, notifier = _cache()
    reading, changed = asyncio.Event(), asyncio.Event()

    async def slow_old_read() -> str:
        reading.set()
        await changed.wait()
        return "old"  # read before the change committed

    task = asyncio.create_task(cache.get("k", slow_old_read))
    await reading.wait()
    notifier.catalog_changed()
    changed.set()
    assert await task == "old"
    load = Loads("new")
    assert await cache.get("k", load) == "new" and load.count == 1


async def test_an_entry_ages_out(monkeypatch: pytest.MonkeyPatch) -> None:
    cache, _ = _cache(max_age=5)
    clock = [100.0]
    monkeypatch.setattr("activities.catalog_cache.time.monotonic", lambda: clock[0])
    load = Loads("x")
    await cache.get("k", load)
    clock[0] += 4.9
    await cache.get("k", load)
    assert load.count == 1
    clock[0] += 0.2
    await cache.get("k", load)
    assert load.count == 2
    assert cache.entries  # kept again
