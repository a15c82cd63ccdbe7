"""Conversations: create, read, update, delete, and their items; every object built as the spec's model."""

from collections.abc import Collection
from typing import Any

from openai.types.conversations import Conversation as WireConversation
from openai.types.conversations import ConversationDeletedResource, ConversationItemList
from sqlalchemy.ext.asyncio import AsyncSession

from core.emit import conversation_item, dump
from core.errors import InvalidRequest, NotFound
from core.ids import new_id
from core.wire import AddItemsRequest, CreateConversationRequest, UpdateConversationRequest, normalize_input
from db import conversations as db
from db.tables import Conversation


def wire(row: Conversation) -> dict[str, Any]:
    """The Conversation object."""
    return dump(WireConversation(id=row.id, object="conversation", created_at=int(row.created_at.timestamp()),
                                 metadata=row.metadata_))


def _items(raw: list[dict[str, Any]], cache_ttls: Collection[str]) -> list[dict[str, Any]]:
    """Items a client adds, validated like a response's input; references are for responses only."""
    items = normalize_input(raw, cache_ttls=cache_ttls, field="items")
    for i, item in enumerate(items):
        if item["type"] == "item_reference":
            raise InvalidRequest("item_reference items cannot be added to a conversation; add the item itself.",
                                 param=f"items[{i}]", code="unsupported_value")
    return [conversation_item(item) for item in items]


async def require(s: AsyncSession, owner_id: str, conversation_id: str, *, lock: bool = False) -> Conversation:
    """This owner's conversation; a 404 for anyone else's or a made-up one."""
    row = await db.get(s, conversation_id, owner_id, lock=lock)
    if row is None:
        raise NotFound(f"No conversation found with id '{conversation_id}'.", param="conversation_id",
                       code="conversation_not_found")
    return row


async def create(s: AsyncSession, owner_id: str, req: CreateConversationRequest,
                 cache_ttls: Collection[str]) -> dict[str, Any]:
    """A new conversation with its initial items."""
    items = _items(req.items, cache_ttls) if req.items else []
    row = Conversation(id=new_id("conv"), owner_id=owner_id, metadata_=req.metadata)
    s.add(row)
    await s.flush()
    await db.append_items(s, row.id, items)
    await s.commit()
    await s.refresh(row)
    return wire(row)


async def update(s: AsyncSession, owner_id: str, conversation_id: str, req: UpdateConversationRequest,
                 ) -> dict[str, Any]:
    """Replace a conversation's metadata."""
    row = await require(s, owner_id, conversation_id, lock=True)
    row.metadata_ = req.metadata
    await s.commit()
    return wire(row)


async def delete(s: AsyncSession, owner_id: str, conversation_id: str) -> dict[str, Any]:
    """Delete a conversation and its items; the responses made in it stay retrievable."""
    row = await require(s, owner_id, conversation_id)
    await s.delete(row)
    await s.commit()
    return dump(ConversationDeletedResource(id=conversation_id, object="conversation.deleted", deleted=True))


def page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A list of conversation items (the spec types `first_id` and `last_id` as strings: "" when it is empty)."""
    return dump(ConversationItemList.model_validate({
        "object": "list", "data": data, "has_more": has_more,
        "first_id": data[0]["id"] if data else "", "last_id": data[-1]["id"] if data else ""}))


async def list_items(s: AsyncSession, owner_id: str, conversation_id: str, *, after: str | None, limit: int,
                     order: str) -> dict[str, Any]:
    """One page of a conversation's items."""
    await require(s, owner_id, conversation_id)
    data, has_more = await db.items_page(s, conversation_id, after=after, limit=limit, order=order)
    return page(data, has_more)


async def add_items(s: AsyncSession, owner_id: str, conversation_id: str, req: AddItemsRequest,
                    cache_ttls: Collection[str]) -> dict[str, Any]:
    """Append items; an id the conversation holds already is a 400."""
    items = _items(req.items, cache_ttls)
    await require(s, owner_id, conversation_id)
    added = await db.append_items(s, conversation_id, items)
    if len(added) < len(items):
        await s.rollback()
        taken = [i["id"] for i in items if i["id"] not in {a["id"] for a in added}]
        raise InvalidRequest(f"The conversation already has an item with id {taken[0]!r}.", param="items",
                             code="invalid_value")
    await s.commit()
    return page(added, False)


async def get_item(s: AsyncSession, owner_id: str, conversation_id: str, item_id: str) -> dict[str, Any]:
    """One item of a conversation."""
    await require(s, owner_id, conversation_id)
    item = await db.get_item(s, conversation_id, item_id)
    if item is None:
        raise NotFound(f"No item with id '{item_id}' in this conversation.", param="item_id", code="item_not_found")
    return item


async def delete_item(s: AsyncSession, owner_id: str, conversation_id: str, item_id: str) -> dict[str, Any]:
    """Delete one item; answers with the conversation, as OpenAI does."""
    row = await require(s, owner_id, conversation_id, lock=True)
    if not await db.delete_item(s, conversation_id, item_id):
        raise NotFound(f"No item with id '{item_id}' in this conversation.", param="item_id", code="item_not_found")
    await s.commit()
    return wire(row)
