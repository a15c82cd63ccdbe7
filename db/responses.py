"""Queries on responses, their items and their steps."""

from collections.abc import Collection
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.status import OPEN_STATUSES, TERMINAL_STATUSES, ResponseStatus
from core.usage import Usage
from db.events import append_events
from db.tables import Item, Response, Step

# Output items of step `seq` sit at seq * STEP_STRIDE + index, so parallel steps never collide.
STEP_STRIDE = 1000


def add_items(session: AsyncSession, response_id: str, owner_id: str, direction: str,
              items: list[dict[str, Any]], first_position: int) -> None:
    """Stage items for insert at consecutive positions."""
    for i, data in enumerate(items):
        session.add(Item(response_id=response_id, owner_id=owner_id, direction=direction,
                         position=first_position + i, id=data["id"], data=data))


async def get_response(session: AsyncSession, response_id: str, owner_id: str | None = None) -> Response | None:
    """A response by id, optionally only if this owner's."""
    row = await session.get(Response, response_id, populate_existing=True)
    if row is None or (owner_id is not None and row.owner_id != owner_id):
        return None
    return row


def is_stored(row: Response) -> bool:
    """Whether the response was created with `store: true` (the default), so clients may read it back."""
    return bool(row.request.get("store", True))


def _stored() -> Any:
    """SQL: the response was created with store true."""
    return func.coalesce(col(Response.request)["store"].astext, "true") != "false"


async def items_by_ids(session: AsyncSession, owner_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Stored items of this owner with these ids (earliest copy of each; none of store-false responses)."""
    rows = await session.execute(
        select(col(Item.id), col(Item.data)).join(Response, col(Response.id) == col(Item.response_id))
        .where(col(Item.owner_id) == owner_id, col(Item.id).in_(ids), _stored())
        .order_by(col(Item.response_id), col(Item.position))
    )
    found: dict[str, dict[str, Any]] = {}
    for item_id, data in rows:
        found.setdefault(item_id, data)
    return found


async def own_items(session: AsyncSession, response_id: str) -> list[dict[str, Any]]:
    """A response's input items, then its output, in order."""
    rows = await session.scalars(
        select(col(Item.data)).where(col(Item.response_id) == response_id)
        .order_by(col(Item.direction), col(Item.position))  # "input" sorts before "output"
    )
    return list(rows)


async def output_item(session: AsyncSession, response_id: str, item_id: str) -> dict[str, Any] | None:
    """One of a response's output items, by id."""
    return await session.scalar(select(col(Item.data)).where(
        col(Item.response_id) == response_id, col(Item.direction) == "output", col(Item.id) == item_id))


async def output_items(session: AsyncSession, response_id: str) -> list[dict[str, Any]]:
    """A response's output, in order."""
    rows = await session.scalars(
        select(col(Item.data)).where(col(Item.response_id) == response_id, col(Item.direction) == "output")
        .order_by(col(Item.position))
    )
    return list(rows)


async def input_items(session: AsyncSession, response_id: str) -> list[dict[str, Any]]:
    """A response's own input items, in order."""
    rows = await session.scalars(
        select(col(Item.data)).where(col(Item.response_id) == response_id, col(Item.direction) == "input")
        .order_by(col(Item.position))
    )
    return list(rows)


async def input_items_page(session: AsyncSession, response_id: str, *, after: str | None, before: str | None,
                           limit: int, order: str) -> tuple[list[dict[str, Any]], bool]:
    """One page of a response's input items and whether more follow."""
    query = select(col(Item.data), col(Item.position)).where(
        col(Item.response_id) == response_id, col(Item.direction) == "input")
    for cursor, forward in ((after, True), (before, False)):
        if cursor is None:
            continue
        pos = await session.scalar(select(func.min(col(Item.position))).where(
            col(Item.response_id) == response_id, col(Item.direction) == "input", col(Item.id) == cursor))
        if pos is None:
            return [], False
        ascending_side = forward == (order == "asc")
        query = query.where(col(Item.position) > pos if ascending_side else col(Item.position) < pos)
    query = query.order_by(col(Item.position).asc() if order == "asc" else col(Item.position).desc())
    rows = list(await session.execute(query.limit(limit + 1)))
    return [r[0] for r in rows[:limit]], len(rows) > limit


async def context_items(session: AsyncSession, response_id: str) -> list[dict[str, Any]]:
    """Everything the model sees: its conversation's items or the previous_response_id chain's inputs and outputs,
    then this one's.

    Output items carry `_turn` (which model call produced them), so calls of different turns stay apart. A
    conversation's items come first (as inputs), but not those this response appended itself when it ended.
    """
    rows = await session.execute(text("""
        WITH RECURSIVE chain(id, prev, depth) AS (
            SELECT id, previous_response_id, 0 FROM responses WHERE id = :id
            UNION ALL
            SELECT r.id, r.previous_response_id, c.depth + 1
            FROM responses r JOIN chain c ON r.id = c.prev WHERE c.depth < 10000
        )
        SELECT data, direction, step, depth FROM (
            SELECT ci.data, 'input' AS direction, 0 AS step, 2147483647 AS depth, ci.position
            FROM conversation_items ci JOIN responses r ON r.conversation_id = ci.conversation_id
            WHERE r.id = :id AND ci.response_id IS DISTINCT FROM :id
            UNION ALL
            SELECT i.data, i.direction, i.position / :stride, c.depth, i.position
            FROM items i JOIN chain c ON i.response_id = c.id
        ) context
        ORDER BY depth DESC, direction, position
    """), {"id": response_id, "stride": STEP_STRIDE})
    return [{**data, "_turn": f"{depth}/{step}"} if direction == "output" else data
            for data, direction, step, depth in rows]


async def set_status(session: AsyncSession, response_id: str, status: ResponseStatus, *,
                     only_from: Collection[ResponseStatus], error: dict[str, Any] | None = None,
                     incomplete_reason: str | None = None) -> Response | None:
    """Stage moving a response to `status` if it is in one of `only_from`; the moved row, None when it did not move."""
    values: dict[str, Any] = {"status": status, "updated_at": func.now()}
    if status in TERMINAL_STATUSES:
        values |= {"completed_at": func.now(), "error": error, "incomplete_reason": incomplete_reason}
    # RETURNING the row spares a SELECT; populate_existing refreshes a copy the session already holds.
    row = await session.scalar(
        update(Response).where(col(Response.id) == response_id, col(Response.status).in_(only_from))
        .values(**values).returning(Response).execution_options(populate_existing=True)
    )
    return row


async def lock_open_response(session: AsyncSession, response_id: str) -> Response | None:
    """Lock the response row for a step's writes; None when it is gone or already terminal."""
    row = await session.scalar(select(Response).where(col(Response.id) == response_id).with_for_update())
    if row is None or row.status in TERMINAL_STATUSES:
        return None
    return row


async def delete_response(session: AsyncSession, response_id: str) -> None:
    """Delete a response with its items and steps."""
    await session.execute(delete(Response).where(col(Response.id) == response_id))
    await session.commit()


async def delete_ended_unstored(session: AsyncSession, older_than: timedelta) -> int:
    """Delete store-false responses that ended longer ago than this (their client did not read the end)."""
    deleted = await session.execute(
        delete(Response).where(~_stored(), col(Response.status).in_(TERMINAL_STATUSES),
                               col(Response.completed_at) < func.now() - older_than).returning(col(Response.id)))
    count = len(deleted.all())
    await session.commit()
    return count


async def stale_open_responses(session: AsyncSession, older_than: timedelta, limit: int = 100) -> list[str]:
    """Ids of responses not terminal and not updated for a while."""
    rows = await session.scalars(
        select(col(Response.id)).where(col(Response.status).in_(OPEN_STATUSES),
                                  col(Response.updated_at) < func.now() - older_than).limit(limit)
    )
    return list(rows)


async def count_open_responses(session: AsyncSession) -> dict[str, int]:
    """How many responses are queued and in progress."""
    rows = await session.execute(select(col(Response.status), func.count()).where(
        col(Response.status).in_(OPEN_STATUSES)).group_by(col(Response.status)))
    return {status: int(n) for status, n in rows}


async def count_steps(session: AsyncSession, response_id: str) -> int:
    """How many steps a response took."""
    return int(await session.scalar(select(func.count()).where(col(Step.response_id) == response_id)) or 0)


async def list_steps(session: AsyncSession, response_id: str) -> list[Step]:
    """A response's steps in order."""
    return list(await session.scalars(select(Step).where(col(Step.response_id) == response_id)
                                      .order_by(col(Step.seq))))


async def completed_step_result(session: AsyncSession, response_id: str, seq: int) -> dict[str, Any] | None:
    """The stored result of a step that already completed, so a retried activity does not redo it."""
    row = await session.get(Step, (response_id, seq), populate_existing=True)
    if row is not None and row.state == "completed":
        return row.result
    return None


class StepStart(NamedTuple):
    """What starting an attempt of a step found."""

    attempt: int  # this attempt's number, counting attempts made in workflow tasks lost with their worker
    result: dict[str, Any] | None  # the stored result of a step that had completed (then nothing was started)


async def begin_step(session: AsyncSession, response_id: str, seq: int, kind: str, *,
                     tool_name: str | None = None, call_id: str | None = None) -> StepStart:
    """Stage the start of an attempt of a step (the first attempt's start time is kept), or find the stored result
    when the step already completed, so a retried activity returns it instead of redoing the step.

    Attempts are counted here, not by Temporal: a step re-run after its worker died (a local activity starts
    over at attempt 1 when its workflow task is retried) is an attempt too.
    """
    started = insert(Step).values(response_id=response_id, seq=seq, kind=kind, state="running", attempt=1,
                                  tool_name=tool_name, call_id=call_id, started_at=func.now())
    started = started.on_conflict_do_update(
        index_elements=["response_id", "seq"],
        set_={"state": "running", "attempt": col(Step.attempt) + 1, "error": None, "finished_at": None},
        where=col(Step.state) != "completed",
    )
    attempt = await session.scalar(started.returning(col(Step.attempt)))
    if attempt is not None:
        return StepStart(attempt, None)
    return StepStart(0, await completed_step_result(session, response_id, seq))


async def fail_step(session: AsyncSession, response_id: str, seq: int, error: str) -> None:
    """Record that the current attempt of a step failed."""
    await session.execute(
        update(Step).where(col(Step.response_id) == response_id, col(Step.seq) == seq,
                           col(Step.state) == "running")  # not one that completed, or that a cancel stopped
        .values(state="failed", error=error[:2000], finished_at=func.now())
    )
    await session.commit()


async def cancel_running_steps(session: AsyncSession, response_id: str) -> None:
    """Stage marking the response's running steps `cancelled` (its cancel stopped them)."""
    await session.execute(update(Step).where(col(Step.response_id) == response_id, col(Step.state) == "running")
                          .values(state="cancelled", finished_at=func.now()))


async def output_items_by_step(session: AsyncSession, response_id: str) -> list[tuple[int, dict[str, Any]]]:
    """A response's output items with the step that made each, in order."""
    rows = await session.execute(
        select(col(Item.position), col(Item.data)).where(col(Item.response_id) == response_id,
                                                         col(Item.direction) == "output")
        .order_by(col(Item.position)))
    return [(position // STEP_STRIDE, data) for position, data in rows]


async def complete_step(session: AsyncSession, response_id: str, seq: int, *, items: list[dict[str, Any]],
                        result: dict[str, Any], error: str | None = None, usage: Usage | None = None,
                        first_index: int = 0, events: list[dict[str, Any]] | None = None,
                        replace: list[dict[str, Any]] | None = None, commit: bool = True) -> bool:
    """Atomically store a step's output items, result and usage; skipped (False) once the response ended or the
    step completed. With commit=False the caller goes on in the same transaction.

    A tool that failed still completes its step (the model gets the error as output); `error` keeps it visible.
    `first_index` skips items an earlier attempt already stored; `replace` rewrites stored output items (by id);
    `events` are the step's closing stream events.

    A few Core statements, as this runs once per step: the response row is locked by adding the usage (a cancel
    ending it waits, or has ended it and nothing is stored), then the step is completed unless a retry did so.
    """
    sums = {name: col(getattr(Response, name)) + value for name, value in usage} if usage is not None else {}
    row = (await session.execute(
        update(Response).where(col(Response.id) == response_id, col(Response.status).in_(OPEN_STATUSES))
        .values(updated_at=func.now(), **sums)
        .returning(col(Response.owner_id), col(Response.request)["stream"].astext))).first()
    if usage is not None and "usage" not in result:  # a model call's result carries it already
        result = {**result, "usage": usage.model_dump()}
    completed = row is not None and await session.scalar(
        update(Step).where(col(Step.response_id) == response_id, col(Step.seq) == seq, col(Step.state) != "completed")
        .values(state="completed", result=result, error=error, finished_at=func.now()).returning(col(Step.seq)))
    if row is None or completed is None:
        await session.rollback()
        return False
    owner_id, stream = row
    if items:
        first = seq * STEP_STRIDE + first_index
        await session.execute(insert(Item), [
            {"response_id": response_id, "owner_id": owner_id, "direction": "output", "position": first + i,
             "id": data["id"], "data": data} for i, data in enumerate(items)])
    for data in replace or []:
        await session.execute(update(Item).where(col(Item.response_id) == response_id, col(Item.direction) == "output",
                                                 col(Item.id) == data["id"]).values(data=data))
    if events and stream == "true":
        await append_events(session, response_id, events, step_seq=seq)
    if commit:
        await session.commit()
    return True
