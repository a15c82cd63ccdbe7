"""Queries on responses, their items and their steps."""

from collections.abc import Collection
from datetime import timedelta
from typing import Any, NamedTuple

from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.status import OPEN_STATUSES, TERMINAL_STATUSES, ResponseStatus
from core.usage import Usage
from db.events import append_events
from db.raw import Db, execute, execute_dicts
from db.tables import Item, Response, Step

# Output items of step `seq` sit at seq * STEP_STRIDE + index, so parallel steps never collide.
STEP_STRIDE = 1000


def add_items(session: AsyncSession, response_id: str, owner_id: str, direction: str,
              items: list[dict[str, Any]], first_position: int) -> None:
    """Stage items for insert at consecutive positions."""
    for i, data in enumerate(items):
        session.add(Item(response_id=response_id, owner_id=owner_id, direction=direction,
                         position=first_position + i, id=data["id"], data=data))


def _values(statuses: Collection[ResponseStatus]) -> list[str]:
    """Statuses as the text the column holds, for `status = ANY(...)`."""
    return [s.value for s in statuses]


async def insert_response(db: Db, row: Response, items: list[dict[str, Any]]) -> None:
    """Insert a new response with its input items, in one statement; the row gets the times the database gave it."""
    created = await (await execute(db, _INSERT_RESPONSE, {
        "id": row.id, "owner_id": row.owner_id, "status": row.status, "model": row.model, "request": Jsonb(row.request),
        "previous_response_id": row.previous_response_id, "idempotency_key": row.idempotency_key,
        "request_hash": row.request_hash, "conversation_id": row.conversation_id, "items": Jsonb(items)})).fetchone()
    assert created is not None
    row.created_at, row.updated_at = created


# The items' foreign key is checked at the end of the statement, which has inserted the response by then.
_INSERT_RESPONSE = """
    WITH response AS (
        INSERT INTO responses (id, owner_id, status, model, request, previous_response_id, idempotency_key,
                               request_hash, conversation_id)
        VALUES (%(id)s, %(owner_id)s, %(status)s, %(model)s, %(request)s, %(previous_response_id)s,
                %(idempotency_key)s, %(request_hash)s, %(conversation_id)s)
        RETURNING created_at, updated_at
    ), added AS (
        INSERT INTO items (response_id, owner_id, direction, position, id, data)
        SELECT %(id)s, %(owner_id)s, 'input', e.ord - 1, e.value ->> 'id', e.value
        FROM response, jsonb_array_elements(%(items)s) WITH ORDINALITY AS e(value, ord)
    )
    SELECT created_at, updated_at FROM response
"""


async def get_response(session: AsyncSession, response_id: str, owner_id: str | None = None) -> Response | None:
    """A response by id, optionally only if this owner's (read as it is now: the row is not kept in the session)."""
    row = await (await execute_dicts(session, "SELECT * FROM responses WHERE id = %s", (response_id,))).fetchone()
    if row is None or (owner_id is not None and row["owner_id"] != owner_id):
        return None
    return Response(**row)


async def response_with_output(db: Db, response_id: str) -> tuple[Response, list[dict[str, Any]]] | None:
    """A response by id with its output items in order, read in one statement."""
    row = await (await execute_dicts(db, _WITH_OUTPUT, (response_id,))).fetchone()
    if row is None:
        return None
    output = row.pop("_output")
    return Response(**row), output


_WITH_OUTPUT = """
    SELECT r.*, coalesce((SELECT jsonb_agg(i.data ORDER BY i.position) FROM items i
                          WHERE i.response_id = r.id AND i.direction = 'output'), '[]') AS _output
    FROM responses r WHERE r.id = %s
"""


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
    row = await (await execute(session, "SELECT data FROM items WHERE response_id = %s AND direction = 'output' "
                                        "AND id = %s", (response_id, item_id))).fetchone()
    return row[0] if row else None


async def output_items(session: AsyncSession, response_id: str) -> list[dict[str, Any]]:
    """A response's output, in order."""
    rows = await (await execute(session, "SELECT data FROM items WHERE response_id = %s AND direction = 'output' "
                                         "ORDER BY position", (response_id,))).fetchall()
    return [data for data, in rows]


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
    rows = await (await execute(session, """
        WITH RECURSIVE chain(id, prev, depth) AS (
            SELECT id, previous_response_id, 0 FROM responses WHERE id = %(id)s
            UNION ALL
            SELECT r.id, r.previous_response_id, c.depth + 1
            FROM responses r JOIN chain c ON r.id = c.prev WHERE c.depth < 10000
        )
        SELECT data, direction, step, depth FROM (
            SELECT ci.data, 'input' AS direction, 0 AS step, 2147483647 AS depth, ci.position
            FROM conversation_items ci JOIN responses r ON r.conversation_id = ci.conversation_id
            WHERE r.id = %(id)s AND ci.response_id IS DISTINCT FROM %(id)s
            UNION ALL
            SELECT i.data, i.direction, i.position / %(stride)s, c.depth, i.position
            FROM items i JOIN chain c ON i.response_id = c.id
        ) context
        ORDER BY depth DESC, direction, position
    """, {"id": response_id, "stride": STEP_STRIDE})).fetchall()
    return [{**data, "_turn": f"{depth}/{step}"} if direction == "output" else data
            for data, direction, step, depth in rows]


async def set_status(session: AsyncSession, response_id: str, status: ResponseStatus, *,
                     only_from: Collection[ResponseStatus], error: dict[str, Any] | None = None,
                     incomplete_reason: str | None = None) -> Response | None:
    """Stage moving a response to `status` if it is in one of `only_from`; the moved row, None when it did not move."""
    row = await (await execute_dicts(session, _SET_STATUS, {
        "id": response_id, "status": status.value, "from": _values(only_from),
        "ends": status in TERMINAL_STATUSES, "error": Jsonb(error) if error is not None else None,
        "reason": incomplete_reason})).fetchone()
    return Response(**row) if row is not None else None


# RETURNING the row spares a SELECT. Ending it stamps completed_at and sets its error and reason.
_SET_STATUS = """
    UPDATE responses SET status = %(status)s, updated_at = now(),
        completed_at = CASE WHEN %(ends)s THEN now() ELSE completed_at END,
        error = CASE WHEN %(ends)s THEN %(error)s::jsonb ELSE error END,
        incomplete_reason = CASE WHEN %(ends)s THEN %(reason)s::text ELSE incomplete_reason END
    WHERE id = %(id)s AND status = ANY(%(from)s)
    RETURNING *
"""


async def set_request(session: AsyncSession, response_id: str, request: dict[str, Any]) -> None:
    """Stage replacing a response's stored request (credentials it no longer needs scrubbed)."""
    await execute(session, "UPDATE responses SET request = %s WHERE id = %s", (Jsonb(request), response_id))


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
    row = await (await execute(session, "SELECT count(*) FROM steps WHERE response_id = %s", (response_id,))).fetchone()
    return int(row[0]) if row else 0


async def list_steps(session: AsyncSession, response_id: str) -> list[Step]:
    """A response's steps in order."""
    return list(await session.scalars(select(Step).where(col(Step.response_id) == response_id)
                                      .order_by(col(Step.seq))))


async def completed_step_result(session: AsyncSession, response_id: str, seq: int) -> dict[str, Any] | None:
    """The stored result of a step that already completed, so a retried activity does not redo it."""
    row = await (await execute(session, "SELECT result FROM steps WHERE response_id = %s AND seq = %s "
                                        "AND state = 'completed'", (response_id, seq))).fetchone()
    return row[0] if row else None


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
    row = await (await execute(session, _BEGIN_STEP, (response_id, seq, kind, tool_name, call_id))).fetchone()
    if row is not None:
        return StepStart(row[0], None)
    return StepStart(0, await completed_step_result(session, response_id, seq))


_BEGIN_STEP = """
    INSERT INTO steps (response_id, seq, kind, state, attempt, tool_name, call_id, started_at)
    VALUES (%s, %s, %s, 'running', 1, %s, %s, now())
    ON CONFLICT (response_id, seq) DO UPDATE SET state = 'running', attempt = steps.attempt + 1, error = NULL,
        finished_at = NULL
    WHERE steps.state <> 'completed'
    RETURNING attempt
"""


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
    """
    if usage is not None and "usage" not in result:  # a model call's result carries it already
        result = {**result, "usage": usage.model_dump()}
    row = await (await execute(session, _COMPLETE_STEP, {
        "id": response_id, "seq": seq, "open": _values(OPEN_STATUSES), "result": Jsonb(result), "error": error,
        "first": seq * STEP_STRIDE + first_index, "items": Jsonb(items), "replace": Jsonb(replace or []),
        **(usage or Usage()).model_dump()})).fetchone()
    if row is None or not row[1]:
        await session.rollback()  # the response ended, or a retry completed the step: its usage is not added twice
        return False
    if events and row[0] == "true":
        await append_events(session, response_id, events, step_seq=seq)
    if commit:
        await session.commit()
    return True


# One statement, as this runs once per step. The response row is locked by adding the usage (a cancel ending it
# waits, or has ended it and nothing is stored); the step is completed unless a retry did so; only then are its
# items stored and rewritten. The caller rolls back when the response moved but the step did not.
_COMPLETE_STEP = sql.SQL("""
    WITH response AS (
        UPDATE responses SET updated_at = now(), {usage}
        WHERE id = %(id)s AND status = ANY(%(open)s)
        RETURNING owner_id, request ->> 'stream' AS stream
    ), step AS (
        UPDATE steps SET state = 'completed', result = %(result)s, error = %(error)s, finished_at = now()
        WHERE response_id = %(id)s AND seq = %(seq)s AND state <> 'completed' AND EXISTS (SELECT FROM response)
        RETURNING seq
    ), added AS (
        INSERT INTO items (response_id, owner_id, direction, position, id, data)
        SELECT %(id)s, response.owner_id, 'output', %(first)s + e.ord - 1, e.value ->> 'id', e.value
        FROM response, step, jsonb_array_elements(%(items)s) WITH ORDINALITY AS e(value, ord)
    ), replaced AS (
        UPDATE items SET data = e.value
        FROM step, jsonb_array_elements(%(replace)s) AS e(value)
        WHERE items.response_id = %(id)s AND items.direction = 'output' AND items.id = e.value ->> 'id'
    )
    SELECT response.stream, EXISTS (SELECT FROM step) FROM response
""").format(usage=sql.SQL(", ").join(sql.SQL("{0} = {0} + {1}").format(sql.Identifier(name), sql.Placeholder(name))
                                     for name in Usage.model_fields))
