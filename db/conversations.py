"""Queries on conversations and their items."""

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.status import OPEN_STATUSES
from db.tables import Conversation, ConversationItem, Response


async def get(session: AsyncSession, conversation_id: str, owner_id: str, *,
              lock: bool = False) -> Conversation | None:
    """This owner's conversation (locked for the transaction with `lock`), or None."""
    query = select(Conversation).where(col(Conversation.id) == conversation_id,
                                       col(Conversation.owner_id) == owner_id)
    return await session.scalar(query.with_for_update() if lock else query)


async def append_items(session: AsyncSession, conversation_id: str, items: list[dict[str, Any]],
                       response_id: str | None = None) -> list[dict[str, Any]]:
    """Stage items at the end of a conversation, in order; an item whose id it holds already is not added again
    (a client re-sending what the conversation has). The items added."""
    # The row lock orders appends: a response ending while a client adds items never collides on a position.
    locked = await session.scalar(select(col(Conversation.id)).where(col(Conversation.id) == conversation_id)
                                  .with_for_update())
    if not items or locked is None:
        return []  # nothing to add, or the conversation was deleted meanwhile
    end = await session.scalar(select(func.max(col(ConversationItem.position)))
                               .where(col(ConversationItem.conversation_id) == conversation_id))
    first = 0 if end is None else end + 1
    rows = [{"conversation_id": conversation_id, "position": first + i, "id": item["id"],
             "response_id": response_id, "data": item} for i, item in enumerate(items)]
    added = await session.scalars(insert(ConversationItem).values(rows).on_conflict_do_nothing(
        constraint="conversation_items_id_key").returning(col(ConversationItem.data)))
    return list(added)


async def items_page(session: AsyncSession, conversation_id: str, *, after: str | None, limit: int,
                     order: str) -> tuple[list[dict[str, Any]], bool]:
    """One page of a conversation's items and whether more follow."""
    query = select(col(ConversationItem.data)).where(col(ConversationItem.conversation_id) == conversation_id)
    if after is not None:
        pos = await session.scalar(select(col(ConversationItem.position)).where(
            col(ConversationItem.conversation_id) == conversation_id, col(ConversationItem.id) == after))
        if pos is None:
            return [], False
        query = query.where(col(ConversationItem.position) > pos if order == "asc"
                            else col(ConversationItem.position) < pos)
    position = col(ConversationItem.position)
    rows = list(await session.scalars(query.order_by(position.asc() if order == "asc" else position.desc())
                                      .limit(limit + 1)))
    return rows[:limit], len(rows) > limit


async def all_items(session: AsyncSession, conversation_id: str) -> list[dict[str, Any]]:
    """A conversation's items, in order."""
    return list(await session.scalars(select(col(ConversationItem.data)).where(
        col(ConversationItem.conversation_id) == conversation_id).order_by(col(ConversationItem.position))))


async def get_item(session: AsyncSession, conversation_id: str, item_id: str) -> dict[str, Any] | None:
    """One item of a conversation, or None."""
    return await session.scalar(select(col(ConversationItem.data)).where(
        col(ConversationItem.conversation_id) == conversation_id, col(ConversationItem.id) == item_id))


async def delete_item(session: AsyncSession, conversation_id: str, item_id: str) -> bool:
    """Delete one item; whether there was one."""
    gone = await session.scalar(delete(ConversationItem).where(
        col(ConversationItem.conversation_id) == conversation_id, col(ConversationItem.id) == item_id)
        .returning(col(ConversationItem.id)))
    return gone is not None


async def open_response(session: AsyncSession, conversation_id: str) -> str | None:
    """The id of a response on this conversation that has not ended, if there is one."""
    return await session.scalar(select(col(Response.id)).where(
        col(Response.conversation_id) == conversation_id, col(Response.status).in_(OPEN_STATUSES)).limit(1))
