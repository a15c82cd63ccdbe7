"""Streams one model step's assistant text into the event log, written behind the upstream, and safe to retry."""

import asyncio
import contextlib
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.convert import reasoning_summary
from core.ids import new_id
from core.stream_events import (
    OpenText,
    PriorStep,
    TextReconciler,
    message_closed,
    message_item,
    message_opened,
    reasoning_events,
    reasoning_item,
    text_delta,
)
from db import responses as db
from db.events import append_events


class MessageStream:
    """Turns upstream text deltas into output_text events for one step (see core.stream_events).

    Reasoning deltas are held until the answer starts (or the step ends), then shown as one reasoning item,
    stored with its events in one transaction, once per step: a retried attempt never shows it twice.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], response_id: str, step_seq: int,
                 first_index: int, prior: PriorStep, coalesce_seconds: float, summary_mode: str | None = None) -> None:
        self.sessions, self.response_id, self.step_seq = sessions, response_id, step_seq
        # Items already stored for this step: messages closed as incomplete, and shown reasoning.
        self.stored_partials = prior.closed
        self.current: OpenText | None = prior.open
        self.next_index = first_index + prior.closed + (1 if prior.open else 0)
        self.reconciler = TextReconciler(prior.open)
        self.pending = ""
        self.pending_logprobs: list[dict[str, Any]] = []
        self.coalesce = coalesce_seconds
        self.last_flush = 0.0
        self.lock = asyncio.Lock()
        self.writer: asyncio.Task[None] | None = None
        self.summary_mode = summary_mode
        self.reasoning = ""
        self.reasoning_done = self.reasoning_shown_before = prior.reasoning_shown

    async def __aenter__(self) -> "MessageStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is None:
            return
        if not self.writer.done():
            # Under the lock: cancelling the writer in the middle of a flush would drop the text it took.
            async with self.lock:
                self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # the step is failing already, or is done
            await self.writer

    def _write_behind(self) -> None:
        """Have pending text written now, or as soon as the write in progress is done.

        Text goes out the moment the log is free, so no delta waits while it could be sent; deltas that arrive
        during a write go together in the next one, so a fast model costs fewer rows than tokens.
        """
        if self.writer is not None and self.writer.done():
            self.writer.result()  # a failed write fails the step
        if self.pending and (self.writer is None or self.writer.done()):
            self.writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self.pending:
            wait = self.last_flush + self.coalesce - time.monotonic()  # an optional floor between writes
            if wait > 0:
                await asyncio.sleep(wait)
            await self.flush()

    async def _written(self) -> None:
        """Wait until every delta taken so far is in the log."""
        if self.writer is not None:
            await self.writer

    def think(self, delta: str) -> None:
        """Take one upstream reasoning delta."""
        if not self.reasoning_done:
            self.reasoning += delta

    async def show_reasoning(self) -> None:
        """Show the reasoning gathered so far as one item, before anything else of this step."""
        async with self.lock:
            text, self.reasoning = self.reasoning, ""
            if self.reasoning_done or not text:
                return
            self.reasoning_done = True
            if self.current is not None:
                return  # an earlier attempt's answer is on screen already: reasoning cannot go before it
            await self._show(reasoning_item(new_id("rs"), text, reasoning_summary(text, self.summary_mode)))

    async def show_item(self, item: dict[str, Any]) -> bool:
        """Show a reasoning item an upstream finished, unchanged, before this step's answer. Whether the step is done
        with it: shown, or left out because an earlier attempt showed its own (as show_reasoning does). False when
        the answer is on screen already: it then goes with the step's final items."""
        async with self.lock:
            if self.reasoning_shown_before:
                return True
            if self.current is not None:
                return False
            return await self._show(item)

    async def _show(self, item: dict[str, Any]) -> bool:
        shown = await self._store_shown(item, reasoning_events(self.next_index, item))
        if shown:
            self.next_index += 1
        return shown

    async def _store_shown(self, item: dict[str, Any], events: list[dict[str, Any]]) -> bool:
        """Store an item this step has shown whole, with its events, in one transaction; False once it ended."""
        async with self.sessions() as s:
            row = await db.lock_open_response(s, self.response_id)
            if row is None:
                return False
            db.add_items(s, self.response_id, row.owner_id, "output", [item],
                         self.step_seq * db.STEP_STRIDE + self.stored_partials)
            await append_events(s, self.response_id, events, self.step_seq)
            await s.commit()
        self.stored_partials += 1
        return True

    async def text(self, delta: str, logprobs: list[dict[str, Any]] | None = None) -> None:
        """Take one upstream delta, with its tokens' logprobs when they were asked for."""
        if self.reasoning:
            await self.show_reasoning()
        send = self.reconciler.feed(delta)
        if send is None:
            await self._restart()
        elif send:
            self.pending += send
            if send == delta:  # a delta only partly new to the client shows its text only
                self.pending_logprobs += logprobs or []
        if not self.last_flush and self.writer is None:
            await self.flush()  # the first text is written at once, before reading on
        self._write_behind()

    async def _restart(self) -> None:
        """The attempt disagrees with what the client saw: close that item as incomplete, start anew."""
        async with self.lock:
            old, attempt = self.current, self.reconciler.attempt
            assert old is not None
            partial = message_item(old.item_id, old.sent, "incomplete")
            if not await self._store_shown(partial, message_closed(old.item_id, old.output_index, old.sent,
                                                                   "incomplete")):
                return
            self.current = None
            self.reconciler = TextReconciler(None)
            self.pending, self.pending_logprobs = self.reconciler.feed(attempt) or "", []

    async def flush(self) -> None:
        """Write pending text as one delta event (opening the message item first if needed)."""
        async with self.lock:
            # Taken before the write: deltas keep arriving while it is awaited.
            chunk, self.pending = self.pending, ""
            logprobs, self.pending_logprobs = self.pending_logprobs, []
            if not chunk:
                return
            events: list[dict[str, Any]] = []
            if self.current is None:
                self.current = OpenText(new_id("msg"), self.next_index)
                self.next_index += 1
                events += message_opened(self.current.item_id, self.current.output_index)
            events.append(text_delta(self.current.item_id, self.current.output_index, chunk, logprobs))
            self.last_flush = time.monotonic()
            async with self.sessions() as s:
                await append_events(s, self.response_id, events, self.step_seq)
                await s.commit()
            self.current.sent += chunk

    async def finish(self, full_text: str, item: dict[str, Any] | None = None,
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        """After the upstream finished: (message items, closing events, index after them). `item`: the upstream's
        finished message, kept whole (annotations, logprobs) under the id this stream gave it."""
        await self._written()
        await self.show_reasoning()
        if self.current is not None and not self.reconciler.agrees_at_end():
            await self._restart()
        await self.flush()
        if self.current is None:
            return [], [], self.next_index
        cur = self.current
        done = ({**item, "id": cur.item_id, "status": "completed"} if item is not None
                else message_item(cur.item_id, full_text, "completed"))
        return [done], message_closed(cur.item_id, cur.output_index, full_text, "completed", done), self.next_index
