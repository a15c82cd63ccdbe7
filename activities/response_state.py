"""Activities that move a response's status."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.lifecycle import move_status, observe_end
from core.contracts import FinalizeInput, MarkInProgressInput
from core.metrics import Metrics
from core.status import OPEN_STATUSES, ResponseStatus
from db import responses as db


@dataclass
class ResponseStateActivities:
    """Status transitions, each conditional so races settle on one terminal state."""

    sessions: async_sessionmaker[AsyncSession]
    metrics: Metrics

    @activity.defn(name="mark_in_progress")
    async def mark_in_progress(self, inp: MarkInProgressInput) -> None:
        """queued → in_progress (only workflows started before the first model call did this itself use it)."""
        async with self.sessions() as s:
            await move_status(s, inp.response_id, ResponseStatus.IN_PROGRESS, only_from=(ResponseStatus.QUEUED,))

    @activity.defn(name="finalize")
    async def finalize(self, inp: FinalizeInput) -> None:
        """Write the terminal status unless one is already there."""
        error = inp.error.model_dump() if inp.error is not None else None
        async with self.sessions() as s:
            row = await move_status(s, inp.response_id, inp.status, only_from=OPEN_STATUSES, error=error,
                                    incomplete_reason=inp.incomplete_reason)
            steps = await db.count_steps(s, inp.response_id) if row else 0
        if row is not None:
            observe_end(self.metrics, row, steps)
            activity.logger.info("response %s %s after %d steps", inp.response_id, inp.status, steps)
