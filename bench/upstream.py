"""The benchmark's upstream: an OpenAI-compatible chat-completions server whose behaviour is in the model name.

A model name `bench-L-S-T-D-P` answers after L ms, asks for the `bench_echo` tool until the conversation holds
S tool results, then answers with T tokens spaced D ms apart, plus P bytes of padding. Each streamed token
is the monotonic clock (ns) at which it was sent, so a client on this machine can tell how long the token
took to reach it. Run as its own process so the load generator and the upstream do not share a loop:
`python -m bench.upstream --port 0` prints the port it listens on. `--models a,b` is what `/v1/models` lists (a peer
that registers models from that list at start, such as ogx, can only be sent those).

For the chaos run (`bench.chaos`) the model `chaos-loop` scripts a 3-step loop over two tools (CHAOS_PLAN),
`--fault-rate R --fault-burst N` fails that share of chat requests in bursts of about N (429 with Retry-After, or
500), and every `/tools/<name>` call is counted per `Idempotency-Key`; `GET /stats` tells the counts.
"""

import argparse
import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOOL = "bench_echo"
CHAOS_MODEL = "chaos-loop"
# The chaos loop: turn 1 calls the first tool, turn 2 both in parallel, turn 3 answers.
CHAOS_PLAN: tuple[tuple[str, ...], ...] = (("chaos_lookup",), ("chaos_lookup", "chaos_compute"))
CHAOS_TOOLS = tuple(dict.fromkeys(name for turn in CHAOS_PLAN for name in turn))


def chaos_answer(tool_results: int) -> str:
    """The chaos loop's final answer: how many tool results the model saw (3 unless something was duplicated)."""
    return f"saw {tool_results} tool results"


@dataclass
class Faults:
    """Fails a share `rate` of requests in bursts of `burst` requests on average, each burst all 429 (with
    Retry-After) or all 500, as a rate-limited or failing upstream does."""

    rate: float = 0.0
    burst: int = 3
    seed: int = 0
    injected: Counter[int] = field(default_factory=Counter, init=False)  # faults answered, by status
    _left: int = field(default=0, init=False, repr=False)  # failures left in the current burst
    _status: int = field(default=500, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.rate < 1 or self.burst < 1:
            raise ValueError("fault rate must be in [0, 1) and burst >= 1")
        self._rng = random.Random(self.seed)
        # Bursts of mean length B start with probability p between successes: the failing share is
        # B / (B + (1 - p) / p), which is `rate` for this p.
        self._start = self.rate / (self.burst * (1 - self.rate) + self.rate)

    def draw(self) -> Response | None:
        """The error to answer this request with, or None to serve it."""
        if not self._left:
            if not self.rate or self._rng.random() >= self._start:
                return None
            self._left = self._rng.randint(1, 2 * self.burst - 1)
            self._status = self._rng.choice((429, 500))
        self._left -= 1
        self.injected[self._status] += 1
        headers = {"Retry-After": "1"} if self._status == 429 else {}
        return JSONResponse({"error": {"message": f"injected fault {self._status}", "type": "chaos"}},
                            status_code=self._status, headers=headers)


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


def _call(step: int, name: str = TOOL) -> dict[str, Any]:
    return {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
            "function": {"name": name, "arguments": json.dumps({"step": step})}}


def _completion(model: str, message: dict[str, Any], usage: dict[str, int]) -> Response:
    return JSONResponse({
        "id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "usage": usage,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if "tool_calls" in message
                     else "stop"}],
    })


def chaos_turn(body: dict[str, Any]) -> Response:
    """The chaos loop's answer, by the number of model turns the conversation holds (not streamed)."""
    messages = body.get("messages", [])
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if turn < len(CHAOS_PLAN):
        message["tool_calls"] = [_call(turn + 1, name) for name in CHAOS_PLAN[turn]]
    else:
        message["content"] = chaos_answer(tool_calls_so_far(messages))
    return _completion(body["model"], message, {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})


async def chat(request: Request) -> Response:
    """POST /v1/chat/completions."""
    request.app.state.chat_requests += 1
    fault = request.app.state.faults.draw()
    if fault is not None:
        return fault
    try:
        body = await request.json()
    except ClientDisconnect:  # a worker killed while sending: nobody to answer
        return Response(status_code=499)
    if body["model"] == CHAOS_MODEL:
        if body.get("stream"):
            return JSONResponse({"error": {"message": "the chaos model is not streamed"}}, status_code=400)
        return chaos_turn(body)
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
    return _completion(body["model"], message, _usage(b))


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
    """POST /tools/<name>: answers at once with its arguments; counts the call under its Idempotency-Key."""
    try:
        arguments = await request.json()
    except ClientDisconnect:  # a worker killed while sending: the tool never ran
        return Response(status_code=499)
    key = request.headers.get("idempotency-key", "")  # "" for a call that came without one
    request.app.state.tool_calls[request.path_params["name"], key] += 1
    return JSONResponse({"echo": arguments})


async def stats(request: Request) -> Response:
    """GET /stats: chat requests served, faults injected by status, tool calls as [tool, key, count] rows."""
    state = request.app.state
    return JSONResponse({"chat_requests": state.chat_requests, "faults": dict(state.faults.injected),
                         "tool_calls": [[tool, key, n] for (tool, key), n in state.tool_calls.items()]})


def app(listed: list[str] | None = None, faults: Faults | None = None) -> Starlette:
    """The upstream's ASGI app; `/v1/models` lists `listed`; chat requests fail as `faults` says."""
    a = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), models(listed or []),
                          Route("/tools/{name}", echo, methods=["POST"]), Route("/stats", stats, methods=["GET"])])
    a.state.faults = faults or Faults()
    a.state.chat_requests = 0
    a.state.tool_calls = Counter()  # (tool, Idempotency-Key) → calls
    return a


def main() -> None:
    """Serve on 127.0.0.1 and print the bound port on stdout."""
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--models", default="", help="comma-separated model names for /v1/models")
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of chat requests that fail (0 ≤ R < 1)")
    p.add_argument("--fault-burst", type=int, default=3, help="mean length of a run of failures")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    listed = [m for m in args.models.split(",") if m]
    faults = Faults(args.fault_rate, args.fault_burst, args.seed)
    config = uvicorn.Config(app(listed, faults), host="127.0.0.1", port=args.port, log_level="warning",
                            access_log=False)
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
