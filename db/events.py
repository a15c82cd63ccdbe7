"""The durable stream event log: append (with NOTIFY), read after a sequence number, expire; NOTIFY itself."""

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.status import TERMINAL_STATUSES
from db.raw import execute
from db.tables import Response, ResponseEvent

EVENTS_CHANNEL = "response_events"  # a response's event log grew
ENDED_CHANNEL = "response_ended"  # a response reached a terminal status
CATALOG_CHANNEL = "catalog_changed"  # an API key, model alias, tool, MCP server or grant was added, changed or removed


# One statement (a round trip, no unit of work): this runs for every streamed delta, and the first delta waits on it.
# The block of sequence numbers comes from a counter on the response row, which serializes concurrent writers
# (parallel tools) until they commit, so notifications arrive in sequence order; a response that is gone gets
# nothing stored. The notification carries the events when they fit (see `carried`).
_APPEND = """
    WITH block AS (
        UPDATE responses SET event_seq = event_seq + %(n)s WHERE id = %(id)s RETURNING event_seq
    ), stored AS (
        INSERT INTO response_events (response_id, seq, step_seq, type, event)
        SELECT %(id)s, block.event_seq - %(n)s + e.ord - 1, %(step_seq)s, e.value ->> 'type', e.value
        FROM block, jsonb_array_elements(CAST(%(events)s AS jsonb)) WITH ORDINALITY AS e(value, ord)
    )
    SELECT (SELECT event_seq FROM block),
           pg_notify(%(channel)s, CASE WHEN %(carry)s THEN concat_ws(' ', %(id)s::text, (SELECT event_seq FROM block),
                                                                  %(events)s::text)
                                       ELSE %(id)s END)
"""
# PostgreSQL refuses payloads of 8000 bytes and more; larger batches are announced by id only, and read back.
_CARRY_LIMIT = 7900


async def append_events(session: AsyncSession, response_id: str, events: list[dict[str, Any]],
                        step_seq: int | None = None) -> list[int]:
    """Stage events at the next sequence numbers and NOTIFY listeners at commit; returns the numbers."""
    if not events:
        return []
    data = json.dumps(events, separators=(",", ":"))
    carry = len(response_id) + len(data) + 24 < _CARRY_LIMIT  # ASCII: json.dumps escapes the rest
    params = {"id": response_id, "n": len(events), "step_seq": step_seq, "events": data, "carry": carry,
              "channel": EVENTS_CHANNEL}
    row = await (await execute(session, _APPEND, params)).fetchone()
    end = row[0] if row else None
    if end is None:
        return []
    return list(range(end - len(events), end))


def carried(payload: str) -> tuple[str, list[dict[str, Any]] | None]:
    """An events notification's response id, and the events it carries with their sequence numbers (None when it
    carries none: read the log)."""
    response_id, _, rest = payload.partition(" ")
    end, _, data = rest.partition(" ")
    if not data or not end.isdigit():
        return response_id, None
    events = json.loads(data)
    first = int(end) - len(events)
    return response_id, [{**event, "sequence_number": first + i} for i, event in enumerate(events)]


async def notify(session: AsyncSession, channel: str, response_id: str) -> None:
    """Stage waking this response's listeners on `channel` at commit; PostgreSQL sends one notification per channel
    and payload per transaction, however often this runs."""
    await execute(session, "SELECT pg_notify(%s, %s)", (channel, response_id))


async def events_after(session: AsyncSession, response_id: str, after: int,
                       limit: int = 500) -> list[dict[str, Any]]:
    """Events with sequence number > after, in order, each with its `sequence_number`."""
    rows = await (await execute(session, "SELECT seq, event FROM response_events WHERE response_id = %s AND seq > %s "
                                         "ORDER BY seq LIMIT %s", (response_id, after, limit))).fetchall()
    return [{**event, "sequence_number": seq} for seq, event in rows]


async def step_events(session: AsyncSession, response_id: str, step_seq: int) -> list[dict[str, Any]]:
    """Events a step already emitted (a retried attempt continues from them)."""
    rows = await (await execute(session, "SELECT event FROM response_events WHERE response_id = %s AND step_seq = %s "
                                         "ORDER BY seq", (response_id, step_seq))).fetchall()
    return [event for event, in rows]


async def delete_expired_events(session: AsyncSession, older_than: timedelta) -> int:
    """Drop event logs of responses that ended longer ago than the retention; returns rows deleted."""
    ended = select(col(Response.id)).where(col(Response.status).in_(TERMINAL_STATUSES),
                                           col(Response.completed_at) < func.now() - older_than)
    deleted = await session.execute(
        delete(ResponseEvent).where(col(ResponseEvent.response_id).in_(ended)).returning(col(ResponseEvent.seq)))
    count = len(deleted.all())
    await session.commit()
    return count
