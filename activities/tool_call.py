"""The server-side tool activity: POST the call's arguments to the registered tool's URL."""

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import mcp_client
from activities.catalog_cache import CatalogCache
from activities.fetch_guard import check_url
from activities.heartbeat import StepGuard, lost_attempts, open_step
from activities.mcp_tools import mcp_server
from core.contracts import ToolCallInput, ToolResult
from core.fetch_policy import FetchRefused
from core.metrics import Metrics
from core.settings import Settings
from core.stream_events import (
    SERVER_LABEL,
    approved_call,
    call_events,
    mcp_call_done,
    mcp_call_finished,
    tool_error,
)
from db import responses as db
from db.catalog import tools_by_name
from db.tables import Tool


@dataclass
class ToolCallActivity:
    """Holds the clients tool dispatch needs."""

    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    metrics: Metrics
    settings: Settings  # where tools may be reached (`fetch`), MCP timeouts
    guard: StepGuard  # hears of the response's end while a step runs
    catalog: CatalogCache

    @activity.defn(name="call_tool")
    async def call_tool(self, inp: ToolCallInput) -> ToolResult:
        """Run one tool call; failures become an error output for the model, not a failed response.

        A model call made the call's `mcp_call` item, which this completes in place; an approved call's item is
        made here (see ToolCallInput) and stored with its result, once.
        """
        self.guard.refuse_once_spent(inp.budget, "the tool step")
        async with self.sessions() as s:  # one transaction: the move to in_progress, the step's start, the reads
            response, done = await open_step(s, inp.response_id, inp.seq, start_response=inp.start_response)
            if response is None:  # a replay after the response ended
                return ToolResult.model_validate({**(done or {}), "response_id": inp.response_id, "replayed": True})
            if inp.approval_request_id:
                call = approved_call(inp.call_id, response.request, inp.approval_request_id)
            else:
                call = await db.output_item(s, inp.response_id, inp.call_id)
            if call is None:
                raise ApplicationError(f"no mcp_call {inp.call_id!r} in this response", non_retryable=True)
            name, label = call["name"], call.get("server_label", SERVER_LABEL)
            start = await db.begin_step(s, inp.response_id, inp.seq, "tool_call", tool_name=name, call_id=inp.call_id)
            if start.result is not None:
                await s.commit()  # the move to in_progress, if this attempt made it
                return ToolResult.model_validate({**start.result, "response_id": inp.response_id, "replayed": True})
            if (lost := lost_attempts(start.attempt, inp.attempts_known)) is not None:
                await s.rollback()  # nothing of this attempt is kept: it runs again once the workflow task completed
                return ToolResult(seq=inp.seq, response_id=inp.response_id, call_id=inp.call_id, ok=False,
                                  deferred=lost)
            tool = None
            if label == SERVER_LABEL:
                registered = await self.catalog.get(("tools", (name,), None), lambda: tools_by_name(s, [name]))
                tool = registered.get(name)
            remote = await mcp_server(s, response.request, label) if label != SERVER_LABEL else None
            await s.commit()
        output: str | None
        error: str | None
        started = time.monotonic()
        if remote is not None:
            output, error = await self.guard.run(inp.response_id, self._invoke_mcp(*remote, label, call))
        elif tool is None:
            output, error = None, f"tool {name!r} is not registered"
        else:
            output, error = await self.guard.run(inp.response_id, self._invoke(tool, call["arguments"],
                                                                               f"{inp.response_id}/{inp.call_id}"))
        self.metrics.tool_call_seconds.labels(name).observe(time.monotonic() - started)
        if error is not None:
            self.metrics.tool_call_errors.labels(name).inc()
            activity.logger.warning("tool %s failed: %s", name, error)
        result = ToolResult(seq=inp.seq, response_id=inp.response_id, call_id=inp.call_id, ok=error is None)
        # Clients see one item per server-side call, with its result.
        done = mcp_call_done(call, output, None if error is None else tool_error(error))
        events = mcp_call_finished(inp.output_index, done)
        async with self.sessions() as s:
            if inp.approval_request_id:
                await db.complete_step(s, inp.response_id, inp.seq, items=[done], result=result.model_dump(),
                                       error=error, events=call_events(inp.output_index, call) + events)
            else:
                await db.complete_step(s, inp.response_id, inp.seq, items=[], replace=[done],
                                       result=result.model_dump(), error=error, events=events)
        return result

    async def _invoke_mcp(self, url: str, headers: dict[str, str], label: str,
                          call: dict[str, Any]) -> tuple[str | None, str | None]:
        """(output, None), or (None, error) when the MCP server or its tool failed: the model gets the error."""
        try:
            arguments = json.loads(call["arguments"] or "{}")
        except ValueError:
            return None, "the model sent arguments that are not valid JSON"
        if not isinstance(arguments, dict):
            return None, "the model sent arguments that are not a JSON object"
        try:
            async with mcp_client.connect(url, headers, self.settings.mcp_timeout_seconds,
                                          self.settings.fetch) as client:
                return await mcp_client.call_tool(client, call["name"], arguments)
        except FetchRefused as exc:
            return None, f"MCP server {label!r} may not be reached: {exc}"
        except Exception as exc:  # the mcp client raises many kinds (HTTP, protocol, task groups)
            return None, f"MCP server {label!r} failed: {exc!r}"[:2000]

    async def _invoke(self, tool: Tool, arguments: str, idempotency_key: str) -> tuple[str | None, str | None]:
        """(output, None) on success, (None, error) when the tool failed or timed out."""
        try:
            json.loads(arguments)
        except ValueError:
            return None, "the model sent arguments that are not valid JSON"
        try:
            await check_url(tool.url, self.settings.fetch)  # now, not when it was registered: names re-resolve
        except FetchRefused as exc:
            return None, f"tool {tool.name!r} may not be reached: {exc}"
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        if tool.secret_header_name and tool.secret_header_value:
            headers[tool.secret_header_name] = tool.secret_header_value
        try:
            resp = await self.http.post(tool.url, content=arguments, headers=headers, timeout=tool.timeout_seconds)
        except httpx.TimeoutException:
            return None, f"tool {tool.name!r} timed out after {tool.timeout_seconds:g}s"
        except httpx.HTTPError as exc:
            return None, f"tool {tool.name!r} unreachable: {exc.__class__.__name__}"
        if resp.status_code >= 400:
            return None, f"tool {tool.name!r} returned HTTP {resp.status_code}: {resp.text[:500]}"
        return resp.text, None
