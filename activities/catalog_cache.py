"""A process's memory of catalog lookups (API keys, model aliases, registered tools), forgotten on any change.

Every response looks its key, its model and its tools up, and the catalog changes rarely: keeping what was found
spares the hot path those statements. A change anywhere NOTIFYs every process at its commit (db.catalog), which
forgets everything; while the LISTEN connection is down nothing is kept, so a missed notice cannot leave a stale
entry, and `max_age_seconds` bounds an entry's life besides. Only what was found is kept: a lookup that finds
nothing (an unknown key, an unregistered tool) always asks the database, so a key or model added is seen at once.
"""

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from activities.notifier import EventNotifier

T = TypeVar("T")

_MAX_ENTRIES = 10_000  # keys, aliases and tool-name sets; past it everything is dropped and gathered anew


class CatalogCache:
    """Lookups kept while no catalog change was announced."""

    def __init__(self, notifier: EventNotifier, max_age_seconds: float) -> None:
        self.notifier = notifier
        self.max_age = max_age_seconds
        self.entries: dict[Hashable, tuple[Any, int, float]] = {}  # key -> (value, generation, stored at)

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The kept value for `key`, or what `load` finds now (kept when it found something)."""
        generation = self.notifier.catalog_generation
        entry = self.entries.get(key)
        if (entry is not None and entry[1] == generation and self.notifier.listening
                and time.monotonic() - entry[2] < self.max_age):
            value: T = entry[0]
            return value
        value = await load()
        # A change announced while loading may not be in what was read: keep it only if none was.
        if value and self.max_age > 0 and self.notifier.listening and generation == self.notifier.catalog_generation:
            if len(self.entries) >= _MAX_ENTRIES:
                self.entries.clear()
            self.entries[key] = (value, generation, time.monotonic())
        return value


async def cached(cache: CatalogCache | None, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
    """`cache.get(key, load)`, or `load()` where none is kept (a ResponseService or prepare built without one)."""
    return await (cache.get(key, load) if cache is not None else load())
