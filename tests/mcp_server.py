"""A real MCP server for the tests: the `mcp` package's server over streamable HTTP, recording what reaches it."""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class Hit:
    """One JSON-RPC request the server received, with the HTTP headers it came with."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class ScriptedMcp:
    """Tools `add`, `weather` and `explode` (which fails); `hits` records every request. Requests to the URL with
    `?slow` answer a listing after `list_delay` seconds."""

    hits: list[Hit] = field(default_factory=list)
    url: str = ""
    list_delay: float = 3.0

    def app(self) -> ASGIApp:
        """The server's ASGI app, behind a recorder of the requests that reach it."""
        server = MCPServer("scripted-mcp")

        @server.tool()
        def add(a: int, b: int) -> str:
            """Add two integers."""
            return str(a + b)

        @server.tool()
        def weather(city: str) -> str:
            """Today's weather in a city."""
            return f"Sunny in {city}, 21 degrees"

        @server.tool()
        def explode() -> str:
            """Always fails."""
            raise ToolError("the tool exploded")

        inner = server.streamable_http_app()

        async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["method"] != "POST":
                await inner(scope, receive, send)
                return
            chunks: list[Message] = []
            body = b""
            while True:
                message = await receive()
                chunks.append(message)
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            payload = json.loads(body or b"{}")
            for request in payload if isinstance(payload, list) else [payload]:
                if isinstance(request, dict) and "method" in request:
                    self.hits.append(Hit(request["method"], request.get("params") or {}, headers))

            if b"slow" in scope.get("query_string", b"") and any(h.method == "tools/list" for h in self.hits[-1:]):
                await asyncio.sleep(self.list_delay)

            async def replay() -> Message:
                return chunks.pop(0) if chunks else await receive()

            await inner(scope, replay, send)

        return recorder

    def calls(self, method: str = "tools/call") -> list[Hit]:
        """The requests of one JSON-RPC method."""
        return [h for h in self.hits if h.method == method]
