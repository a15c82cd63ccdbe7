"""/v1/responses: create, retrieve, delete, cancel, input items, steps."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from openai.types.responses import CompactedResponse, ResponseItemList
from openai.types.responses import Response as WireResponse
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from activities.lifecycle import rendered
from api import steps
from api.deps import Db, Owner, Relay, Service, read_json
from api.openapi import json_body
from api.steps import StepList, StepObject
from core.emit import dump
from core.errors import InvalidRequest
from core.stream_events import compaction_item
from core.usage import Usage
from core.wire import CompactRequest, CreateResponseRequest
from db import responses as db

router = APIRouter(prefix="/v1/responses", tags=["responses"])


class ResponseDeleted(BaseModel):
    """DELETE /v1/responses/{id}."""

    id: str
    object: Literal["response.deleted"]
    deleted: bool


_STREAM = {"text/event-stream": {"schema": {"type": "string", "description": "Responses stream events"}}}


@router.post("", response_model=None, openapi_extra=json_body(CreateResponseRequest),
             responses={200: {"model": WireResponse, "content": _STREAM}})
async def create_response(
    request: Request, owner: Owner, s: Db, service: Service, relay: Relay,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> dict[str, Any] | EventSourceResponse:
    """Start a response: blocking, `background: true` (answer at once), or `stream: true` (SSE)."""
    row = await service.create(s, owner, await read_json(request), idempotency_key)
    stored = db.is_stored(row)
    if row.request.get("stream"):
        # The stream is the durable log: a client that disconnects can resume with GET ?stream=true.
        return relay.response(row.id, -1, discard_at_end=not stored)
    try:
        if not row.request.get("background"):
            return await service.wait(s, row)
        return await rendered(s, row)
    finally:
        if not stored:
            await db.delete_response(s, row.id)  # it has ended, and this answer was its one reader


@router.post("/compact", openapi_extra=json_body(CompactRequest), responses={200: {"model": CompactedResponse}})
async def compact(request: Request, owner: Owner, s: Db, service: Service) -> dict[str, Any]:
    """Summarize a conversation window into one `compaction` item to continue from (a durable model call)."""
    row = await service.compact(s, owner, await read_json(request))
    return dump(CompactedResponse(id=row.id, object="response.compaction", created_at=int(row.created_at.timestamp()),
                                  output=[compaction_item(row.id)], usage=Usage.model_validate(row).to_wire()))


@router.get("/{response_id}", response_model=None, responses={200: {"model": WireResponse, "content": _STREAM}})
async def get_response(response_id: str, owner: Owner, s: Db, service: Service, relay: Relay, stream: bool = False,
                       starting_after: Annotated[int, Query(ge=-1)] = -1) -> dict[str, Any] | EventSourceResponse:
    """Retrieve a response; with `stream=true`, replay its event log from `starting_after` and follow it."""
    row = await service.get(s, owner, response_id)
    if not stream:
        return await rendered(s, row)
    if not row.request.get("stream"):
        raise InvalidRequest("This response was not created with stream=true; it has no event log.",
                             param="stream", code="not_streamed")
    return relay.response(response_id, starting_after)


@router.delete("/{response_id}", responses={200: {"model": ResponseDeleted}})
async def delete_response(response_id: str, owner: Owner, s: Db, service: Service) -> dict[str, Any]:
    """Delete a response, its items and steps."""
    await service.delete(s, owner, response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.post("/{response_id}/cancel", responses={200: {"model": WireResponse}})
async def cancel_response(response_id: str, owner: Owner, s: Db, service: Service) -> dict[str, Any]:
    """Cancel an in-flight response."""
    return await rendered(s, await service.cancel(s, owner, response_id))


@router.get("/{response_id}/input_items", responses={200: {"model": ResponseItemList}})
async def list_input_items(
    response_id: str, owner: Owner, s: Db, service: Service,
    after: str | None = None, before: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    """The response's input items, paginated like OpenAI's list endpoints."""
    await service.get(s, owner, response_id)
    data, has_more = await db.input_items_page(s, response_id, after=after, before=before, limit=limit, order=order)
    return dump(ResponseItemList.model_validate({"object": "list", "data": data, "has_more": has_more,
                                                 "first_id": data[0]["id"] if data else None,
                                                 "last_id": data[-1]["id"] if data else None}))


@router.get("/{response_id}/steps", response_model=StepList)
async def list_steps(response_id: str, owner: Owner, s: Db, service: Service,
                     include: Annotated[list[Literal["step_details"]] | None, Query()] = None) -> StepList:
    """The agent's steps: kind, state (running, completed, failed, cancelled), tool, attempt, timings, usage; with
    `include=step_details`, each model call's request and result and each tool call's arguments and output."""
    row = await service.get(s, owner, response_id)
    return StepList(data=await steps.list_steps(s, row, details=bool(include)))


@router.get("/{response_id}/steps/{step_id}", response_model=StepObject)
async def get_step(response_id: str, step_id: str, owner: Owner, s: Db, service: Service,
                   include: Annotated[list[Literal["step_details"]] | None, Query()] = None) -> StepObject:
    """One step."""
    row = await service.get(s, owner, response_id)
    return await steps.get_step(s, row, step_id, details=bool(include))
