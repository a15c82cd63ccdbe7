"""/v1/responses: create, retrieve, delete, cancel, input items, steps."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import Notifier, Owner, Service, Sessions, read_json
from api.stream import relay
from core.errors import InvalidRequest
from core.render import render_response
from db import responses as db
from db.tables import Response

router = APIRouter(prefix="/v1/responses", tags=["responses"])


async def _render(sessions: Sessions, row: Response) -> dict[str, Any]:
    async with sessions() as s:
        return render_response(row, await db.output_items(s, row.id))


def _sse(sessions: Sessions, notifier: Notifier, response_id: str, after: int) -> StreamingResponse:
    return StreamingResponse(relay(sessions, notifier, response_id, after), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("", response_model=None)
async def create_response(
    request: Request, owner: Owner, service: Service, sessions: Sessions, notifier: Notifier,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> dict[str, Any] | StreamingResponse:
    """Start a response: blocking, `background: true` (answer at once), or `stream: true` (SSE)."""
    row = await service.create(owner, await read_json(request), idempotency_key)
    if row.request.get("stream"):
        # The stream is the durable log: a client that disconnects can resume with GET ?stream=true.
        return _sse(sessions, notifier, row.id, -1)
    if not row.request.get("background"):
        row = await service.wait(row)
    return await _render(sessions, row)


@router.get("/{response_id}", response_model=None)
async def get_response(response_id: str, owner: Owner, service: Service, sessions: Sessions, notifier: Notifier,
                       stream: bool = False, starting_after: Annotated[int, Query(ge=-1)] = -1,
                       ) -> dict[str, Any] | StreamingResponse:
    """Retrieve a response; with `stream=true`, replay its event log from `starting_after` and follow it."""
    row = await service.get(owner, response_id)
    if not stream:
        return await _render(sessions, row)
    if not row.request.get("stream"):
        raise InvalidRequest("This response was not created with stream=true; it has no event log.",
                             param="stream", code="not_streamed")
    return _sse(sessions, notifier, response_id, starting_after)


@router.delete("/{response_id}")
async def delete_response(response_id: str, owner: Owner, service: Service) -> dict[str, Any]:
    """Delete a response, its items and steps."""
    await service.delete(owner, response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.post("/{response_id}/cancel")
async def cancel_response(response_id: str, owner: Owner, service: Service, sessions: Sessions) -> dict[str, Any]:
    """Cancel an in-flight response."""
    return await _render(sessions, await service.cancel(owner, response_id))


@router.get("/{response_id}/input_items")
async def list_input_items(
    response_id: str, owner: Owner, service: Service, sessions: Sessions,
    after: str | None = None, before: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    """The response's input items, paginated like OpenAI's list endpoints."""
    await service.get(owner, response_id)
    async with sessions() as s:
        data, has_more = await db.input_items_page(s, response_id, after=after, before=before, limit=limit,
                                                   order=order)
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


@router.get("/{response_id}/steps")
async def list_steps(response_id: str, owner: Owner, service: Service, sessions: Sessions) -> dict[str, Any]:
    """The agent's steps: kind, state, tool, attempt and timings."""
    await service.get(owner, response_id)
    async with sessions() as s:
        steps = await db.list_steps(s, response_id)
    data = []
    for st in steps:
        duration = None
        if st.started_at and st.finished_at:
            duration = round((st.finished_at - st.started_at).total_seconds() * 1000, 3)
        data.append({"object": "response.step", "seq": st.seq, "kind": st.kind, "state": st.state,
                     "tool_name": st.tool_name, "call_id": st.call_id, "attempt": st.attempt,
                     "started_at": st.started_at.isoformat() if st.started_at else None,
                     "finished_at": st.finished_at.isoformat() if st.finished_at else None,
                     "duration_ms": duration, "error": st.error})
    return {"object": "list", "data": data}
