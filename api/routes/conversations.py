"""/v1/conversations: conversations and their items."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from openai.types.conversations import Conversation, ConversationDeletedResource, ConversationItem, ConversationItemList

from api import conversations
from api.deps import AppSettings, Db, Owner, read_json
from api.openapi import json_body
from core.wire import AddItemsRequest, CreateConversationRequest, UpdateConversationRequest, validate_body

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.post("", openapi_extra=json_body(CreateConversationRequest), responses={200: {"model": Conversation}})
async def create_conversation(request: Request, owner: Owner, s: Db, settings: AppSettings) -> dict[str, Any]:
    """Create a conversation, with up to 20 initial items."""
    body = validate_body(CreateConversationRequest, await read_json(request))
    return await conversations.create(s, owner, body, settings.cache_control_ttls)


@router.get("/{conversation_id}", responses={200: {"model": Conversation}})
async def get_conversation(conversation_id: str, owner: Owner, s: Db) -> dict[str, Any]:
    """Retrieve a conversation."""
    return conversations.wire(await conversations.require(s, owner, conversation_id))


@router.post("/{conversation_id}", openapi_extra=json_body(UpdateConversationRequest),
             responses={200: {"model": Conversation}})
async def update_conversation(conversation_id: str, request: Request, owner: Owner, s: Db) -> dict[str, Any]:
    """Replace a conversation's metadata."""
    body = validate_body(UpdateConversationRequest, await read_json(request))
    return await conversations.update(s, owner, conversation_id, body)


@router.delete("/{conversation_id}", responses={200: {"model": ConversationDeletedResource}})
async def delete_conversation(conversation_id: str, owner: Owner, s: Db) -> dict[str, Any]:
    """Delete a conversation and its items (its responses stay retrievable)."""
    return await conversations.delete(s, owner, conversation_id)


@router.get("/{conversation_id}/items", responses={200: {"model": ConversationItemList}})
async def list_items(conversation_id: str, owner: Owner, s: Db, after: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20, order: Literal["asc", "desc"] = "desc",
                     include: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:
    """A conversation's items, paginated like `input_items` (`include` is accepted; items carry all they have)."""
    return await conversations.list_items(s, owner, conversation_id, after=after, limit=limit, order=order)


@router.post("/{conversation_id}/items", openapi_extra=json_body(AddItemsRequest),
             responses={200: {"model": ConversationItemList}})
async def add_items(conversation_id: str, request: Request, owner: Owner, s: Db, settings: AppSettings,
                    include: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:
    """Append up to 20 items."""
    body = validate_body(AddItemsRequest, await read_json(request))
    return await conversations.add_items(s, owner, conversation_id, body, settings.cache_control_ttls)


@router.get("/{conversation_id}/items/{item_id}", responses={200: {"model": ConversationItem}})
async def get_item(conversation_id: str, item_id: str, owner: Owner, s: Db,
                   include: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:
    """One item of a conversation."""
    return await conversations.get_item(s, owner, conversation_id, item_id)


@router.delete("/{conversation_id}/items/{item_id}", responses={200: {"model": Conversation}})
async def delete_item(conversation_id: str, item_id: str, owner: Owner, s: Db) -> dict[str, Any]:
    """Delete one item; answers with the conversation."""
    return await conversations.delete_item(s, owner, conversation_id, item_id)
