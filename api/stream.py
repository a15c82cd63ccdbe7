"""SSE relay of the durable event log, woken by PostgreSQL LISTEN/NOTIFY."""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent

from activities.notifier import EventNotifier
from api.errors import outage
from core.status import TERMINAL_STATUSES
from core.stream_events import TERMINAL_EVENT_TYPES
from db import responses as db
from db.events import events_after

log = logging.getLogger("agentrunner.api")


@dataclass
class EventRelay:
    """Serves response event logs as SSE: replay, then follow live; keep-alive comments while nothing happens."""

    sessions: async_sessionmaker[AsyncSession]
    notifier: EventNotifier
    keepalive_seconds: float

    def response(self, response_id: str, after: int, *, discard_at_end: bool = False) -> EventSourceResponse:
        """The SSE response for one event log, from sequence number `after` + 1."""
        # Proxies cut idle connections: a comment every keepalive_seconds keeps a long tool step's stream open.
        return EventSourceResponse(self.events(response_id, after, discard_at_end=discard_at_end),
                                   ping=self.keepalive_seconds, sep="\n")

    async def _read(self, response_id: str, after: int) -> tuple[list[dict[str, Any]], bool]:
        """The events after `after`, and whether the response has ended (or is gone) with nothing more to send."""
        async with self.sessions() as s:
            events = await events_after(s, response_id, after)
            if events:
                return events, False
            row = await db.get_response(s, response_id)
            if row is not None and row.status not in TERMINAL_STATUSES:
                return [], False
            # The terminal event commits with the status, possibly just after the first read.
            return await events_after(s, response_id, after), True

    async def events(self, response_id: str, after: int, *,
                     discard_at_end: bool = False) -> AsyncIterator[ServerSentEvent]:
        """Replay events after `after`, then follow the log live until the terminal event.

        `discard_at_end` (store: false) deletes the response once its terminal event was sent.
        """
        with self.notifier.subscribe(response_id) as wake:
            while True:
                wake.clear()  # cleared before reading, so a NOTIFY during the read is not lost
                # What the notifications carried goes out as is: the log is read only to catch up.
                carried = wake.take(after)
                try:
                    events, ended = (carried, False) if carried else await self._read(response_id, after)
                except Exception as exc:
                    # A database outage pauses the stream (keep-alives still flow) instead of cutting it.
                    if outage(exc) is None:
                        raise
                    await asyncio.sleep(self.notifier.poll_seconds)
                    continue
                for event in events:
                    terminal = event["type"] in TERMINAL_EVENT_TYPES
                    if terminal and discard_at_end:
                        # Before sending: a client that hangs up once it has the terminal event (as an agentrunner
                        # upstream client does) would otherwise cancel us before the delete.
                        async with self.sessions() as s:
                            await db.delete_response(s, response_id)
                    yield ServerSentEvent(json.dumps(event, separators=(",", ":")), event=event["type"])
                    after = event["sequence_number"]
                    if terminal:
                        return
                if ended:
                    return  # deleted meanwhile, or ended and everything is sent
                if events and not carried:
                    continue  # a read returns a page at most: look for more before waiting
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.notifier.wait_timeout())
