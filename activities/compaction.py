"""The compaction activities: summarize a stored conversation window with one model call, or mark it failed."""

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.upstream import complete, upstream_error
from core.contracts import CompactionFailure, CompactionInput, UpstreamFailure
from core.convert import compaction_refs, items_to_messages
from core.settings import Settings
from core.usage import Usage
from db import compactions as db
from db.catalog import resolve_model

SUMMARY_PROMPT = ("You compact conversations. Summarize the conversation so far so that it can be continued "
                  "from your summary alone: keep every fact, decision, name, number, open task and preference "
                  "stated. Answer with the summary only.")


@dataclass
class CompactionActivities:
    """Holds the clients compaction needs."""

    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    settings: Settings

    @activity.defn(name="summarize_window")
    async def summarize(self, inp: CompactionInput) -> None:
        """Call the model for the summary and store it; a retry after it was stored does nothing."""
        async with self.sessions() as s:
            row = await db.get_compaction(s, inp.compaction_id)
            if row is None:
                raise ApplicationError("compaction was deleted", type="CompactionGone", non_retryable=True)
            if row.status != "running":
                return
            target = await resolve_model(s, self.settings, row.model)
            summaries = await db.completed_summaries(s, row.owner_id, compaction_refs(row.items))
        if target is None:
            raise upstream_error(UpstreamFailure(status=400, message=f"model {row.model!r} is not available",
                                                 code="model_not_found"), retryable=False)
        messages = [{"role": "system", "content": SUMMARY_PROMPT},
                    *items_to_messages(row.instructions, row.items, summaries)]
        payload = {"model": target.upstream_model, "messages": messages}
        completion = await heartbeating(complete(self.http, target, payload, self.settings.upstream_timeout_seconds))
        summary = (completion["choices"][0].get("message") or {}).get("content") or ""
        async with self.sessions() as s:
            await db.finish_compaction(s, inp.compaction_id, summary=summary,
                                       usage=Usage.from_chat(completion.get("usage")))

    @activity.defn(name="fail_compaction")
    async def fail(self, inp: CompactionFailure) -> None:
        """Mark a compaction failed (unless it finished)."""
        async with self.sessions() as s:
            await db.finish_compaction(s, inp.compaction_id, error=inp.error.model_dump())
