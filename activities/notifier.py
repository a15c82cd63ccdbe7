"""One LISTEN connection per process, waking whoever waits on a response: its stream relays (the event log grew),
a blocking request or a running local step (it ended); and telling the process's catalog cache of changes."""

import asyncio
import contextlib
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from typing import Any

import psycopg

from db.events import CATALOG_CHANNEL, ENDED_CHANNEL, EVENTS_CHANNEL, carried

log = logging.getLogger("agentrunner.notifier")

# Ends remembered for a subscriber that arrives just after the NOTIFY (a step that read its row as open a moment
# before the cancel committed); bounded, as only the last moments matter.
_RECENT_ENDS = 10_000
# Events a waiter keeps from notifications until it takes them; past this it reads the log instead.
_MAX_CARRIED = 1_000


class Wake(asyncio.Event):
    """Set when a response's event log grows or it ends; keeps the events the notifications carried meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.carried: list[dict[str, Any]] | None = []  # None: some wake carried nothing, the log must be read

    def carry(self, events: list[dict[str, Any]] | None) -> None:
        """Keep what a notification carried (None: it announced events without them)."""
        if events is None or self.carried is None or len(self.carried) + len(events) > _MAX_CARRIED:
            self.carried = None
        else:
            self.carried += events
        self.set()

    def take(self, after: int) -> list[dict[str, Any]] | None:
        """The carried events after sequence number `after` when they follow on from it without a gap; None when
        the log must be read (nothing carried, something missed, or the wake was of another kind)."""
        kept, self.carried = self.carried, []
        events = [e for e in kept or () if e["sequence_number"] > after]
        if not events or any(e["sequence_number"] != after + 1 + i for i, e in enumerate(events)):
            return None
        return events


class EventNotifier:
    """Routes the process's notifications to per-response asyncio events."""

    # How long a waiter sleeps without a notification before it looks again: the fallback while the LISTEN
    # connection is being re-established.
    poll_seconds = 1.0

    def __init__(self, dsn: str, *, follow_events: bool = True) -> None:
        self.dsn = dsn
        self.follow_events = follow_events  # a worker only waits for ends: it need not hear every delta
        self.waiters: dict[tuple[str, str], set[Wake]] = defaultdict(set)
        self.ended: OrderedDict[str, None] = OrderedDict()
        self.listening = False
        # Counts catalog changes heard of (and connection changes, across which some may be missed): a lookup kept
        # under an older number is stale.
        self.catalog_generation = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin listening in the background."""
        self.task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        """Stop listening."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    @contextlib.contextmanager
    def subscribe(self, response_id: str, *, events: bool = True) -> Iterator[Wake]:
        """An event set when this response ends and, with `events`, whenever its event log grows (keeping the events
        notifications carried)."""
        wake = Wake()
        keys = [(ENDED_CHANNEL, response_id)] + ([(EVENTS_CHANNEL, response_id)] if events else [])
        for key in keys:
            self.waiters[key].add(wake)
        if response_id in self.ended:
            wake.set()
        try:
            yield wake
        finally:
            for key in keys:
                self.waiters[key].discard(wake)
                if not self.waiters[key]:
                    del self.waiters[key]

    def wait_timeout(self) -> float | None:
        """How long a waiter may sleep before it looks for itself: forever while notifications flow (an idle waiter
        costs no queries), `poll_seconds` while the connection is down."""
        return None if self.listening else self.poll_seconds

    def catalog_changed(self) -> None:
        """Forget kept catalog lookups: this process changed the catalog (its own NOTIFY arrives a moment later)."""
        self.catalog_generation += 1

    def _deliver(self, channel: str, payload: str) -> None:
        if channel == CATALOG_CHANNEL:
            self.catalog_changed()
            return
        if channel == EVENTS_CHANNEL:
            response_id, events = carried(payload)
            for wake in self.waiters.get((channel, response_id), ()):
                wake.carry(events)
            return
        self.ended[payload] = None
        if len(self.ended) > _RECENT_ENDS:
            self.ended.popitem(last=False)
        for wake in self.waiters.get((channel, payload), ()):
            wake.set()

    async def _listen_forever(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    if self.follow_events:
                        await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    await conn.execute(f"LISTEN {ENDED_CHANNEL}")
                    await conn.execute(f"LISTEN {CATALOG_CHANNEL}")
                    self.catalog_changed()  # changes made while not listening were not heard of
                    self.listening = True
                    # A waiter that read just before LISTEN took hold, and then stopped polling, would miss what
                    # committed in between: everyone looks once more.
                    self._wake_all()
                    async for note in conn.notifies():
                        self._deliver(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Waiters fall back to polling meanwhile; reconnect after a pause.
                log.exception("LISTEN connection lost; reconnecting")
                await asyncio.sleep(1.0)
            finally:
                if self.listening:  # wake everyone, to look for themselves and poll until it is back
                    self.listening = False
                    self._wake_all()

    def _wake_all(self) -> None:
        for waiters in self.waiters.values():
            for wake in waiters:
                wake.set()
