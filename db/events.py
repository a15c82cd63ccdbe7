"""The durable stream event log: append (with NOTIFY), read after a sequence number, expire; NOTIFY itself."""

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.status import TERMINAL_STATUSES
from db.tables import Response, ResponseEvent

EVENTS_CHANNEL = "response_events"  # a response's event log grew
ENDED_CHANNEL = "response_ended"  # a response reached a terminal status


async def append_events(session: AsyncSession, response_id: str, events: list[dict[str, Any]],
                        step_seq: int | None = None) -> list[int]:
    """Stage events at the next sequence numbers and NOTIFY listeners at commit; returns the numbers."""
    if not events:
        return []
    # Allocating a block from a counter on the response row serializes concurrent writers (parallel tools).
    end = await session.scalar(
        update(Response).where(col(Response.id) == response_id)
        .values(event_seq=col(Response.event_seq) + len(events)).returning(col(Response.event_seq))
    )
    if end is None:
        return []
    first = end - len(events)
    for i, event in enumerate(events):
        session.add(ResponseEvent(response_id=response_id, seq=first + i, step_seq=step_seq, type=event["type"],
                                  event=event))
    await notify(session, EVENTS_CHANNEL, response_id)
    return list(range(first, end))


async def notify(session: AsyncSession, channel: str, response_id: str) -> None:
    """Stage waking this response's listeners on `channel` at commit; PostgreSQL sends one notification per channel
    and payload per transaction, however often this runs."""
    await session.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": channel, "id": response_id})


async def events_after(session: AsyncSession, response_id: str, after: int,
                       limit: int = 500) -> list[dict[str, Any]]:
    """Events with sequence number > after, in order, each with its `sequence_number`."""
    rows = await session.execute(
        select(col(ResponseEvent.seq), col(ResponseEvent.event))
        .where(col(ResponseEvent.response_id) == response_id, col(ResponseEvent.seq) > after)
        .order_by(col(ResponseEvent.seq)).limit(limit)
    )
    return [{**event, "sequence_number": seq} for seq, event in rows]


async def step_events(session: AsyncSession, response_id: str, step_seq: int) -> list[dict[str, Any]]:
    """Events a step already emitted (a retried attempt continues from them)."""
    rows = await session.scalars(
        select(col(ResponseEvent.event))
        .where(col(ResponseEvent.response_id) == response_id, col(ResponseEvent.step_seq) == step_seq)
        .order_by(col(ResponseEvent.seq))
    )
    return list(rows)


async def delete_expired_events(session: AsyncSession, older_than: timedelta) -> int:
    """Drop event logs of responses that ended longer ago than the retention; returns rows deleted."""
    ended = select(col(Response.id)).where(col(Response.status).in_(TERMINAL_STATUSES),
                                           col(Response.completed_at) < func.now() - older_than)
    deleted = await session.execute(
        delete(ResponseEvent).where(col(ResponseEvent.response_id).in_(ended)).returning(col(ResponseEvent.seq)))
    count = len(deleted.all())
    await session.commit()
    return count
