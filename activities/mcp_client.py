"""Talking to a remote MCP server over streamable HTTP with the official `mcp` client, behind the fetch policy."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from activities.fetch_guard import check_url
from core.fetch_policy import FetchPolicy


@asynccontextmanager
async def connect(url: str, headers: dict[str, str], read_timeout: float, fetch: FetchPolicy) -> AsyncIterator[Client]:
    """An MCP session with the server at `url` (checked against the policy first); closed on exit."""
    await check_url(url, fetch)
    async with httpx2.AsyncClient(headers=headers, timeout=read_timeout) as http:
        # No response cache: a list is stored as an item, and a call must reach the server every time.
        async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
            yield client


async def list_tools(client: Client) -> list[dict[str, Any]]:
    """Every tool the server offers (all pages), in the shape of an `mcp_list_tools` item's `tools`."""
    tools: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += [{"name": t.name, "description": t.description, "input_schema": t.input_schema,
                   "annotations": t.annotations.model_dump(mode="json", exclude_none=True) if t.annotations else None}
                  for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            return tools


async def call_tool(client: Client, name: str, arguments: dict[str, Any]) -> tuple[str | None, str | None]:
    """(output, None), or (None, error) when the tool reported an error; its text content, else its structured
    content as JSON."""
    result = await client.call_tool(name, arguments)
    text = "".join(getattr(part, "text", "") for part in result.content)
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content)
    return (None, text or "the tool reported an error") if result.is_error else (text, None)
