"""/healthz (the process answers) and /readyz (PostgreSQL and Temporal reachable, migrations applied)."""

import asyncio
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.deps import Service
from core.errors import ServiceUnavailable
from db.migrate import pending_revisions

router = APIRouter(include_in_schema=False)

# A check that takes longer than this counts as down: an orchestrator's probe must get an answer in time.
_CHECK_SECONDS = 2.0


class Health(BaseModel):
    """What /healthz and a passing /readyz answer."""

    status: Literal["ok", "ready"]
    checks: dict[str, str] = {}


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up; says nothing of its dependencies (use /readyz)."""
    return Health(status="ok")


@router.get("/readyz")
async def readyz(request: Request, service: Service) -> Health:
    """200 when PostgreSQL is reachable at the schema's head and Temporal answers; else a 503 saying what is not."""
    postgresql, temporal = await asyncio.gather(_postgresql(request.app.state.engine), _temporal(service.temporal))
    checks = {"postgresql": postgresql, "temporal": temporal}
    failing = [f"{name}: {result}" for name, result in checks.items() if result != "ok"]
    if failing:
        raise ServiceUnavailable(f"Not ready: {'; '.join(failing)}.", code="not_ready")
    return Health(status="ready", checks=checks)


async def _postgresql(engine: AsyncEngine) -> str:
    try:
        pending = await asyncio.wait_for(pending_revisions(engine), _CHECK_SECONDS)
    except Exception as exc:
        return f"unreachable ({exc.__class__.__name__})"
    return f"migrations pending ({', '.join(pending)})" if pending else "ok"


async def _temporal(client: Client) -> str:
    try:
        healthy = await client.service_client.check_health(timeout=timedelta(seconds=_CHECK_SECONDS))
    except Exception as exc:
        return f"unreachable ({exc.__class__.__name__})"
    return "ok" if healthy else "not serving"
