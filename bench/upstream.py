"""The benchmark's upstream: an OpenAI-compatible chat-completions server whose behaviour is in the model name.

A model name `bench-L-S-T-D-P` answers after L ms, asks for the `bench_echo` tool until the conversation holds
S tool results, then answers with T tokens spaced D ms apart, plus P bytes of padding. Each streamed token
is the monotonic clock (ns) at which it was sent, so a client on this machine can tell how long the token
took to reach it. Run as its own process so the load generator and the upstream do not share a loop:
`python -m bench.upstream --port 0` prints the port it listens on. `--models a,b` is what `/v1/models` lists (a peer
that registers models from that list at start, such as ogx, can only be sent those).
"""

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOOL = "bench_echo"


@dataclass(frozen=True)
class Behaviour:
    """What a `bench-…` model name asks the upstream to do."""

    latency_ms: int = 0
    steps: int = 0
    tokens: int = 8
    token_delay_ms: int = 0
    pad_bytes: int = 0

    @property
    def model(self) -> str:
        """The model name that encodes this behaviour."""
        return (f"bench-{self.latency_ms}-{self.steps}-{self.tokens}-{self.token_delay_ms}-{self.pad_bytes}")

    @classmethod
    def parse(cls, model: str) -> "Behaviour":
        """Read a behaviour back from a model name (a provider prefix such as `openai/` is ignored)."""
        fields = model.rsplit("/", 1)[-1].split("-")
        if fields[0] != "bench" or len(fields) != 6:
            raise ValueError(f"not a bench model: {model}")
        return cls(*(int(f) for f in fields[1:]))


def tool_calls_so_far(messages: list[dict[str, Any]]) -> int:
    """How many tool results the conversation already holds."""
    return sum(1 for m in messages if m.get("role") == "tool")


def token() -> str:
    """One token: the send time in monotonic nanoseconds."""
    return f"{time.monotonic_ns()} "


def _usage(b: Behaviour) -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": b.tokens, "total_tokens": 10 + b.tokens}


def _call(step: int) -> dict[str, Any]:
    return {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
            "function": {"name": TOOL, "arguments": json.dumps({"step": step})}}


async def chat(request: Request) -> Response:
    """POST /v1/chat/completions."""
    body = await request.json()
    b = Behaviour.parse(body["model"])
    if b.latency_ms:
        await asyncio.sleep(b.latency_ms / 1000)
    done = tool_calls_so_far(body.get("messages", []))
    wants_tool = done < b.steps
    if body.get("stream"):
        return StreamingResponse(_chunks(b, body["model"], wants_tool, done), media_type="text/event-stream")
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if wants_tool:
        message["tool_calls"] = [_call(done + 1)]
    else:
        message["content"] = "".join(token() for _ in range(b.tokens)) + "x" * b.pad_bytes
    return JSONResponse({
        "id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion", "created": int(time.time()),
        "model": body["model"], "usage": _usage(b),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if wants_tool else "stop"}],
    })


async def _chunks(b: Behaviour, model: str, wants_tool: bool, done: int) -> AsyncIterator[bytes]:
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion.chunk", "model": model,
            "created": int(time.time())}

    def frame(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta or finish else []
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

    yield frame({"role": "assistant", "content": ""})
    if wants_tool:
        yield frame({"tool_calls": [{"index": 0, **_call(done + 1)}]})
    else:
        for i in range(b.tokens):
            if i and b.token_delay_ms:
                await asyncio.sleep(b.token_delay_ms / 1000)
            yield frame({"content": token()})
        if b.pad_bytes:
            yield frame({"content": "x" * b.pad_bytes})
    yield frame({}, "tool_calls" if wants_tool else "stop")
    yield frame({}, usage=_usage(b))
    yield b"data: [DONE]\n\n"


def models(listed: list[str]) -> Route:
    """GET /v1/models, listing the given model names."""

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                          "owned_by": "bench"} for m in listed]})

    return Route("/v1/models", list_models, methods=["GET"])


async def echo(request: Request) -> Response:
    """POST /tools/bench_echo: answers at once with its arguments."""
    return JSONResponse({"echo": await request.json()})


def app(listed: list[str] | None = None) -> Starlette:
    """The upstream's ASGI app; `/v1/models` lists `listed`."""
    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), models(listed or []),
                             Route(f"/tools/{TOOL}", echo, methods=["POST"])])


def main() -> None:
    """Serve on 127.0.0.1 and print the bound port on stdout."""
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--models", default="", help="comma-separated model names for /v1/models")
    args = p.parse_args()
    listed = [m for m in args.models.split(",") if m]
    config = uvicorn.Config(app(listed), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        print(server.servers[0].sockets[0].getsockname()[1], flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
