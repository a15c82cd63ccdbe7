"""A response's steps as clients read them (the run steps of an Assistants-style client), with their details."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from core.contracts import StepKind, StepState
from core.errors import NotFound
from core.usage import Usage
from db import responses as db
from db.tables import Response, Step


class StepObject(BaseModel):
    """One step of a response: a model call, a tool call, a tool listing or a compaction."""

    id: str
    object: Literal["response.step"] = "response.step"
    response_id: str
    seq: int
    kind: StepKind
    state: StepState
    tool_name: str | None
    call_id: str | None
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None
    usage: dict[str, Any] | None  # a model call's or compaction's tokens, in the Response `usage` shape
    details: dict[str, Any] | None = None  # with include=step_details


class StepList(BaseModel):
    """GET /v1/responses/{id}/steps."""

    object: Literal["list"] = "list"
    data: list[StepObject]


def step_id(seq: int) -> str:
    """A step's id within its response."""
    return f"step_{seq}"


def _details(st: Step, row: Response, context: list[dict[str, Any]],
             by_step: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    made = [item for step, item in by_step if step == st.seq]
    if st.kind == "model_call":
        # What the model was given: the context without this response's output from this step on.
        seen = [{k: v for k, v in item.items() if k != "_turn"} for item in context
                if not str(item.get("_turn", "")).startswith("0/") or int(item["_turn"][2:]) < st.seq]
        tools = [t.get("name") for t in row.request.get("_model_tools") or []]
        return {"request": {"model": row.model, "instructions": row.request.get("instructions"), "tools": tools,
                            "input": seen}, "result": made}
    if st.kind == "tool_call":
        call = next((item for _, item in by_step if item.get("id") == st.call_id), None) or {}
        return {"arguments": call.get("arguments"), "output": call.get("output"), "error": call.get("error")}
    return {"result": made}


async def list_steps(s: AsyncSession, row: Response, *, details: bool) -> list[StepObject]:
    """A response's steps in order; with `details`, what each was given and gave."""
    steps = await db.list_steps(s, row.id)
    context = await db.context_items(s, row.id) if details else []
    by_step = await db.output_items_by_step(s, row.id) if details else []
    out = []
    for st in steps:
        duration = None
        if st.started_at and st.finished_at:
            duration = round((st.finished_at - st.started_at).total_seconds() * 1000, 3)
        usage = (st.result or {}).get("usage")
        out.append(StepObject(
            id=step_id(st.seq), response_id=row.id, seq=st.seq, kind=st.kind, state=st.state,
            tool_name=st.tool_name, call_id=st.call_id, attempt=st.attempt, started_at=st.started_at,
            finished_at=st.finished_at, duration_ms=duration, error=st.error,
            usage=Usage.model_validate(usage).to_wire() if usage else None,
            details=_details(st, row, context, by_step) if details else None))
    return out


async def get_step(s: AsyncSession, row: Response, step: str, *, details: bool) -> StepObject:
    """One step by id; a 404 for an id the response has no step for."""
    found = next((st for st in await list_steps(s, row, details=details) if st.id == step), None)
    if found is None:
        raise NotFound(f"No step '{step}' in response '{row.id}'.", param="step_id", code="step_not_found")
    return found
