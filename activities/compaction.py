"""The compaction activities: summarize a stored conversation window with one model call, or mark it failed."""

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating, response_ended
from activities.upstream import complete, create_response, model_unavailable
from core.contracts import CompactionFailure, CompactionInput, ContextCompactionInput
from core.convert import items_to_messages
from core.model_target import ModelTarget
from core.responses_items import context_to_input
from core.settings import Settings
from core.stream_events import compaction_item, item_added, item_done
from core.usage import Usage
from db import compactions as db
from db import responses
from db.catalog import resolve_model
from db.tables import Compaction

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
            summaries = await db.completed_summaries(s, row.owner_id, row.items)
        summary, usage = await self._summarize(target, row.model, row.instructions, row.items, summaries)
        async with self.sessions() as s:
            await db.finish_compaction(s, inp.compaction_id, summary=summary, usage=usage)

    @activity.defn(name="compact_context")
    async def compact_context(self, inp: ContextCompactionInput) -> None:
        """A compaction step of a response's loop: summarize its context so far into a `compaction` output item,
        which stands for everything before it from then on. A retry after the step completed does nothing."""
        async with self.sessions() as s:
            if await responses.completed_step_result(s, inp.response_id, inp.seq) is not None:
                return
            response = await responses.get_response(s, inp.response_id)
            if response is None:
                raise response_ended(inp.response_id, None)
            await responses.begin_step(s, inp.response_id, inp.seq, "compaction")
            target = await resolve_model(s, self.settings, response.model)
            context = await responses.context_items(s, inp.response_id)
            summaries = await db.completed_summaries(s, response.owner_id, context)
            await s.commit()
        instructions = response.request.get("instructions")
        summary, usage = await self._summarize(target, response.model, instructions, context, summaries)
        # Derived from the step, so a retry that gets this far again finds the row it stored.
        compaction_id = "cmp_" + hashlib.sha256(f"{inp.response_id}/{inp.seq}".encode()).hexdigest()[:32]
        item = compaction_item(compaction_id)
        async with self.sessions() as s:
            await db.store_compaction(s, Compaction(
                id=compaction_id, owner_id=response.owner_id, model=response.model, status="completed",
                instructions=instructions, items=context, summary=summary, **usage.model_dump()))
            await responses.complete_step(s, inp.response_id, inp.seq, items=[item], result={"seq": inp.seq},
                                          usage=usage, events=[item_added(inp.output_index, item),
                                                               item_done(inp.output_index, item)])

    async def _summarize(self, target: ModelTarget | None, model: str, instructions: str | None,
                         items: list[dict[str, Any]], summaries: dict[str, str]) -> tuple[str, Usage]:
        """The model's summary of these items, and what it cost."""
        if target is None:
            raise model_unavailable(model)
        timeout = self.settings.upstream_timeout_seconds
        if target.api == "responses":  # the upstream's own items, as its model steps send them
            given = context_to_input(items, summaries, cache_control=target.cache_control)
            if instructions:
                given = [{"role": "developer", "content": instructions}, *given]
            payload = {"model": target.upstream_model, "store": False, "instructions": SUMMARY_PROMPT, "input": given}
            result = await heartbeating(create_response(self.http, target, payload, timeout))
            summary = "".join(p.get("text") or "" for i in result["output"] if i.get("type") == "message"
                              for p in i.get("content") or [] if p.get("type") == "output_text")
            return summary, Usage.from_responses(result.get("usage"))
        messages = [{"role": "system", "content": SUMMARY_PROMPT}, *items_to_messages(instructions, items, summaries)]
        payload = {"model": target.upstream_model, "messages": messages}
        completion = await heartbeating(complete(self.http, target, payload, timeout))
        summary = (completion["choices"][0].get("message") or {}).get("content") or ""
        return summary, Usage.from_chat(completion.get("usage"))

    @activity.defn(name="fail_compaction")
    async def fail(self, inp: CompactionFailure) -> None:
        """Mark a compaction failed (unless it finished)."""
        async with self.sessions() as s:
            await db.finish_compaction(s, inp.compaction_id, error=inp.error.model_dump())
