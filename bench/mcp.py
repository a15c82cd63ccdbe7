"""What a remote MCP tool call costs through agentrunner, against the client calling the same MCP server itself.

The bench's MCP server (the official `mcp` server over streamable HTTP, served in the bench process) offers
`bench_echo`, the tool the scripted upstream asks for, so the same model names drive an MCP tool loop. Each call,
ours and the direct one, opens its own MCP session, as the tool step does.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from mcp import Client
from mcp.server.mcpserver import MCPServer

from bench.measure import Target, timed_direct
from bench.upstream import TOOL, Behaviour

LABEL = "bench"


@contextlib.asynccontextmanager
async def mcp_server() -> AsyncIterator[str]:
    """Serve the bench MCP server on 127.0.0.1 (free port) in this loop; yields its URL."""
    server = MCPServer("bench")

    @server.tool(name=TOOL)
    def echo(step: int) -> str:
        """Echoes its argument."""
        return json.dumps({"step": step})

    uv = uvicorn.Server(uvicorn.Config(server.streamable_http_app(), host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = uv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        uv.should_exit = True
        await task


def mcp_body(b: Behaviour, url: str, model: str | None = None) -> dict[str, Any]:
    """A /v1/responses request (under `model` if given) whose tool steps call the MCP server's `bench_echo`."""
    return {"model": model or b.model, "input": "go",
            "tools": [{"type": "mcp", "server_label": LABEL, "server_url": url, "require_approval": "never"}]}


async def timed_mcp_response(http: httpx.AsyncClient, t: Target, b: Behaviour, url: str) -> float:
    """Milliseconds for one blocking response through the MCP tool loop, which must complete."""
    start = time.perf_counter()
    r = await http.post(t.base_url + "/v1/responses", json=mcp_body(b, url, t.model(b)), headers=t.headers)
    elapsed = (time.perf_counter() - start) * 1000
    r.raise_for_status()
    if r.json()["status"] != "completed":
        raise RuntimeError(f"{t.name}: MCP response ended {r.json()['status']}: {r.text[:500]}")
    return elapsed


async def call_directly(url: str, step: int) -> str:
    """One call of the MCP server's tool in a session of its own."""
    async with Client(url, cache=None) as client:
        result = await client.call_tool(TOOL, {"step": step})
        return "".join(getattr(part, "text", "") for part in result.content)


async def timed_direct_mcp_loop(http: httpx.AsyncClient, upstream: str, b: Behaviour, url: str) -> float:
    """Milliseconds for the client running the same loop itself: list the tools once, then model call, MCP call, …,
    final model call."""
    start = time.perf_counter()
    async with Client(url, cache=None) as client:
        await client.list_tools()

    async def call(arguments: str) -> str:
        return await call_directly(url, json.loads(arguments)["step"])

    return await timed_direct(http, upstream, b, call, start=start)
