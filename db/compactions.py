"""Queries on compactions: summarized conversation windows, owner-scoped."""

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.convert import compaction_refs
from core.usage import Usage
from db.tables import Compaction


async def get_compaction(session: AsyncSession, compaction_id: str) -> Compaction | None:
    """A compaction by id."""
    return await session.get(Compaction, compaction_id, populate_existing=True)


async def completed_summaries(session: AsyncSession, owner_id: str, items: list[dict[str, Any]]) -> dict[str, str]:
    """The summaries of this owner's completed compactions that these items' `compaction` items refer to."""
    ids = compaction_refs(items)
    if not ids:
        return {}
    rows = await session.execute(
        select(col(Compaction.id), col(Compaction.summary)).where(
            col(Compaction.id).in_(ids), col(Compaction.owner_id) == owner_id, col(Compaction.status) == "completed"))
    return {cid: summary or "" for cid, summary in rows}


async def store_compaction(session: AsyncSession, row: Compaction) -> None:
    """Stage a finished compaction; one already stored under its id is kept (a retried step made it)."""
    values = {c: getattr(row, c) for c in Compaction.model_fields}
    await session.execute(insert(Compaction).values(**{k: v for k, v in values.items() if v is not None})
                          .on_conflict_do_nothing(index_elements=["id"]))


async def finish_compaction(session: AsyncSession, compaction_id: str, *, summary: str | None = None,
                            usage: Usage | None = None, error: dict[str, Any] | None = None) -> None:
    """Store a running compaction's summary (completed) or its error (failed); a finished one stays as it is."""
    values: dict[str, Any] = {"status": "failed" if error is not None else "completed", "summary": summary,
                              "error": error, "completed_at": func.now(), **(usage or Usage()).model_dump()}
    await session.execute(update(Compaction).where(col(Compaction.id) == compaction_id,
                                                   col(Compaction.status) == "running").values(**values))
    await session.commit()
