"""/v1/models: what `model` may name."""

from typing import Any, Literal

from fastapi import APIRouter
from openai.types import Model
from pydantic import BaseModel

from api.deps import AppSettings, Db, Owner
from db.catalog import list_models, usable

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelList(BaseModel):
    """GET /v1/models."""

    object: Literal["list"]
    data: list[Model]


@router.get("", responses={200: {"model": ModelList}})
async def models(owner: Owner, s: Db, settings: AppSettings) -> dict[str, Any]:
    """The built-in scripted model and every registered alias the caller may use."""
    rows = await list_models(s, owner)
    data = []
    if await usable(s, "model", [settings.scripted_model], owner):
        data.append({"id": settings.scripted_model, "object": "model", "created": 0, "owned_by": "agentrunner"})
    data += [{"id": r.alias, "object": "model", "created": int(r.created_at.timestamp()), "owned_by": "agentrunner"}
             for r in rows if r.alias != settings.scripted_model]
    return {"object": "list", "data": data}
