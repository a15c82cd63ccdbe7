"""Remote MCP servers in the loop: listing a server's tools as a step, and where a server is reached."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating, response_ended
from activities.lifecycle import move_status
from activities.mcp_client import connect, list_tools
from activities.upstream import upstream_error
from core.contracts import ListToolsInput, UpstreamFailure
from core.fetch_policy import FetchRefused
from core.settings import Settings
from core.status import ResponseStatus
from core.stream_events import mcp_list_tools_events, mcp_list_tools_item
from db import responses as db
from db.catalog import mcp_servers_by_label


async def mcp_server(s: AsyncSession, request: dict[str, Any], label: str) -> tuple[str, dict[str, str]]:
    """The URL and headers of a response's MCP server: as the request gave them, or as an admin registered it."""
    server = (request.get("_mcp_servers") or {}).get(label)
    if server is None:
        raise ApplicationError(f"no MCP server {label!r} in this response", non_retryable=True)
    if not server.get("registered"):
        return server["url"], server.get("headers") or {}
    row = (await mcp_servers_by_label(s, [label])).get(label)
    if row is None:
        raise upstream_error(UpstreamFailure(status=424, message=f"MCP server {label!r} is no longer registered"),
                             retryable=False)
    return row.url, row.headers


@dataclass
class McpActivities:
    """Holds what talking to MCP servers needs."""

    sessions: async_sessionmaker[AsyncSession]
    settings: Settings

    @activity.defn(name="list_mcp_tools")
    async def list_tools(self, inp: ListToolsInput) -> None:
        """List a server's tools into an `mcp_list_tools` output item; a retry after the step completed does nothing.

        A server that cannot be reached is retried like any step, then fails the response (424, as OpenAI answers).
        """
        async with self.sessions() as s:
            moved = (await move_status(s, inp.response_id, ResponseStatus.IN_PROGRESS,
                                       only_from=(ResponseStatus.QUEUED,), commit=False)
                     if inp.start_response else None)
            if await db.completed_step_result(s, inp.response_id, inp.seq) is not None:
                await s.commit()
                return
            response = moved or await db.get_response(s, inp.response_id)
            if response is None:
                raise response_ended(inp.response_id, None)
            await db.begin_step(s, inp.response_id, inp.seq, "list_tools", tool_name=inp.server_label)
            url, headers = await mcp_server(s, response.request, inp.server_label)
            await s.commit()
        try:
            tools = await heartbeating(self._list(url, headers))
        except FetchRefused as exc:
            await self._fail(inp, str(exc))
            raise upstream_error(UpstreamFailure(status=424, message=f"MCP server {inp.server_label!r} may not be "
                                                                     f"reached: {exc}"), retryable=False) from exc
        except Exception as exc:  # the mcp client raises many kinds (HTTP, protocol, task groups)
            await self._fail(inp, repr(exc))
            raise upstream_error(UpstreamFailure(status=424, message=f"Error retrieving tool list from MCP server "
                                                                     f"{inp.server_label!r}: {exc}"),
                                 retryable=True) from exc
        item = mcp_list_tools_item(inp.server_label, tools)
        async with self.sessions() as s:
            await db.complete_step(s, inp.response_id, inp.seq, items=[item], result={"seq": inp.seq},
                                   events=mcp_list_tools_events(inp.output_index, item))

    async def _list(self, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        async with connect(url, headers, self.settings.mcp_timeout_seconds, self.settings.fetch) as client:
            return await list_tools(client)

    async def _fail(self, inp: ListToolsInput, error: str) -> None:
        async with self.sessions() as s:
            await db.fail_step(s, inp.response_id, inp.seq, error)
