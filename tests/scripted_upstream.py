"""A scripted OpenAI-compatible upstream and tool server: a real HTTP server the tests program."""

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    """One upstream answer: text and/or tool calls, or an HTTP error; optionally slow."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    error_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str | None = None
    usage: tuple[int, int] = (10, 5)
    token_delay: float = 0.0  # streaming: pause before each token
    drop_after: int | None = None  # streaming: cut the connection after this many tokens
    cache: tuple[int, int] = (0, 0)  # prompt tokens read from / written to the upstream's cache
    reasoning: str | None = None  # sent before the answer, as vLLM/DeepSeek (reasoning_content) or Ollama do
    reasoning_field: str = "reasoning_content"
    numbered_ids: bool = False  # ids `call_0`, `msg_0`… afresh each answer, as some local servers give them

    def id(self, prefix: str, n: int = 0) -> str:
        """An item or call id: random, or numbered within this answer."""
        return f"{prefix}_{n}" if self.numbered_ids else f"{prefix}_{uuid.uuid4().hex[:12]}"

    def tokens(self) -> list[str]:
        """The text as streamed, one word (with its following space) per chunk."""
        return re.findall(r"\S+\s*|\s+", self.text or "")


@dataclass
class Script:
    """Replies for one upstream model name, used in order (the last one repeats).

    In order of requests by default (so retries see the next reply); `per_turn` picks by the number of
    assistant turns in the conversation instead, so a retried call gets the same reply again.
    """

    replies: list[Reply]
    per_turn: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    aborted: int = 0
    token_times: list[float] = field(default_factory=list)  # monotonic time each streamed token was sent
    encrypted: list[str] = field(default_factory=list)  # each reasoning `encrypted_content` sent (Responses API)

    def reply_for(self, body: dict[str, Any]) -> Reply:
        """The reply to this request."""
        if self.per_turn:
            index = assistant_turns(body)
        else:
            index = len(self.requests) - 1
        return self.replies[min(index, len(self.replies) - 1)]

    def tool_messages(self, request_index: int) -> list[dict[str, Any]]:
        """The tool results the model saw in one of its requests."""
        return [m for m in self.requests[request_index]["messages"] if m["role"] == "tool"]


def _by_model(item: dict[str, Any]) -> bool:
    return item.get("type") in ("reasoning", "function_call") or item.get("role") == "assistant"


def assistant_turns(body: dict[str, Any]) -> int:
    """How many model turns a request's conversation holds: assistant messages in a chat request; in a Responses
    request, runs of items the model produced (reasoning, assistant messages, function calls)."""
    if "messages" in body:
        return sum(1 for m in body["messages"] if m["role"] == "assistant")
    items = body["input"] if isinstance(body["input"], list) else []
    return sum(1 for i, item in enumerate(items) if _by_model(item) and (i == 0 or not _by_model(items[i - 1])))


@dataclass
class ToolBehaviour:
    """How a tool endpoint answers."""

    status: int = 200
    delay: float = 0.0
    body: str | None = None  # default: echo the arguments


@dataclass
class ToolHit:
    """One request a tool endpoint received."""

    idempotency_key: str | None
    arguments: Any
    headers: dict[str, str]
    started: float
    finished: float | None = None


class ScriptedUpstream:
    """Holds scripts and tool behaviours; `app` serves them."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.tools: dict[str, ToolBehaviour] = {}
        self.tool_hits: dict[str, list[ToolHit]] = {}
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/responses", self._responses, methods=["POST"]),
            Route("/tools/{name}", self._tool, methods=["POST"]),
        ])
        self.base_url = ""

    def script(self, *replies: Reply, per_turn: bool = False) -> str:
        """Register replies under a fresh upstream model name and return it."""
        name = f"scripted-{uuid.uuid4().hex[:10]}"
        self.scripts[name] = Script(list(replies), per_turn)
        return name

    def tool(self, behaviour: ToolBehaviour | None = None) -> str:
        """A fresh tool endpoint name with this behaviour."""
        name = f"tool_{uuid.uuid4().hex[:8]}"
        self.tools[name] = behaviour or ToolBehaviour()
        self.tool_hits[name] = []
        return name

    async def _wait_or_abort(self, request: Request, delay: float) -> bool:
        """Simulated latency; False when the client hung up meanwhile."""
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                return False
            await asyncio.sleep(min(0.02, max(deadline - time.monotonic(), 0)))
        return True

    async def _reply(self, request: Request, body: dict[str, Any]) -> tuple[Script, Reply, Response | None]:
        """Record the request and pick its reply; the answer instead when it is an error or the client hung up."""
        script = self.scripts[body["model"]]
        script.requests.append(body)
        reply = script.reply_for(body)
        if reply.delay and not await self._wait_or_abort(request, reply.delay):
            script.aborted += 1
            return script, reply, Response(status_code=499)
        if reply.status != 200:
            return script, reply, JSONResponse(reply.error_body or {"error": {"message": "scripted failure"}},
                                               status_code=reply.status, headers=reply.headers)
        return script, reply, None

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        script, reply, refusal = await self._reply(request, body)
        if refusal is not None:
            return refusal
        if body.get("stream"):
            return StreamingResponse(self._chunks(script, reply, body), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.reasoning:
            message[reply.reasoning_field] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": reply.id("call", n), "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}
                for n, (name, args) in enumerate(reply.tool_calls)]
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [self._logprob(t, body) for t in reply.tokens()]}
        return JSONResponse({
            "id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"], "choices": [choice],
            "usage": self._usage(reply),
        })

    @staticmethod
    def _logprob(token: str, body: dict[str, Any]) -> dict[str, Any]:
        """One entry a word, its alternatives the word itself, `top_logprobs` of them."""
        entry = {"token": token, "logprob": -0.5, "bytes": list(token.encode())}
        return {**entry, "top_logprobs": [entry] * (body.get("top_logprobs") or 0)}

    @staticmethod
    def _usage(reply: Reply) -> dict[str, Any]:
        prompt, completion = reply.usage
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}
        if reply.reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(reply.reasoning.split())}
        if any(reply.cache):  # as Anthropic-compatible gateways report them
            usage["prompt_tokens_details"] = {"cached_tokens": reply.cache[0]}
            usage["cache_creation_input_tokens"] = reply.cache[1]
        return usage

    async def _chunks(self, script: Script, reply: Reply, body: dict[str, Any]) -> AsyncIterator[bytes]:
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion.chunk", "model": body["model"],
                "created": int(time.time())}

        def frame(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

        yield frame([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        logprobs = (lambda t: {"logprobs": {"content": [self._logprob(t, body)]}}) if body.get("logprobs") \
            else (lambda t: {})
        for token in re.findall(r"\S+\s*|\s+", reply.reasoning or ""):
            yield frame([{"index": 0, "delta": {reply.reasoning_field: token}, "finish_reason": None}])
        for n, token in enumerate(reply.tokens()):
            if reply.drop_after is not None and n >= reply.drop_after:
                raise ConnectionAbortedError("scripted mid-stream disconnect")
            if reply.token_delay:
                await asyncio.sleep(reply.token_delay)
            script.token_times.append(time.monotonic())
            yield frame([{"index": 0, "delta": {"content": token}, "finish_reason": None, **logprobs(token)}])
        for i, (name, args) in enumerate(reply.tool_calls):
            call = {"index": i, "id": reply.id("call", i), "type": "function",
                    "function": {"name": name, "arguments": ""}}
            yield frame([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}])
            text = json.dumps(args)
            for part in (text[: len(text) // 2], text[len(text) // 2 :]):
                yield frame([{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": part}}]},
                              "finish_reason": None}])
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        yield frame([{"index": 0, "delta": {}, "finish_reason": finish}])
        yield frame([], usage=self._usage(reply))
        yield b"data: [DONE]\n\n"

    async def _responses(self, request: Request) -> Response:
        """The Responses API, stateless as a `store: false` client uses it; reasoning comes encrypted: an opaque
        blob unique to each answer, which a client must hand back unchanged."""
        body = await request.json()
        script, reply, refusal = await self._reply(request, body)
        if refusal is not None:
            return refusal
        output: list[dict[str, Any]] = []
        if reply.reasoning:
            blob = base64.b64encode(uuid.uuid4().bytes + b"\xfb\xff" + reply.reasoning.encode()).decode()
            script.encrypted.append(blob)
            output.append({"id": reply.id("rs"), "type": "reasoning", "encrypted_content": blob,
                           "summary": [{"type": "summary_text", "text": reply.reasoning}]})
        if reply.text is not None:
            output.append({"id": reply.id("msg"), "type": "message", "role": "assistant",
                           "status": "completed", "content": [{"type": "output_text", "text": reply.text,
                                                               "annotations": [], "logprobs": []}]})
        output += [{"id": reply.id("fc", n), "type": "function_call", "call_id": reply.id("call", n), "name": name,
                    "arguments": json.dumps(args), "status": "completed"}
                   for n, (name, args) in enumerate(reply.tool_calls)]
        prompt, completion = reply.usage
        incomplete = reply.finish_reason == "length"
        result = {"id": f"resp_{uuid.uuid4().hex}", "object": "response", "created_at": int(time.time()),
                  "model": body["model"], "status": "incomplete" if incomplete else "completed", "error": None,
                  "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None, "output": output,
                  "usage": {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion,
                            "input_tokens_details": {"cached_tokens": reply.cache[0]},
                            "output_tokens_details": {"reasoning_tokens": len((reply.reasoning or "").split())}}}
        if body.get("stream"):
            return StreamingResponse(self._response_events(script, reply, result), media_type="text/event-stream")
        return JSONResponse(result)

    async def _response_events(self, script: Script, reply: Reply, result: dict[str, Any]) -> AsyncIterator[bytes]:
        seq = iter(range(1_000_000))

        def event(type_: str, **fields: Any) -> bytes:
            return f"event: {type_}\ndata: {json.dumps({'type': type_, 'sequence_number': next(seq), **fields})}\n\n"\
                .encode()

        yield event("response.created", response={**result, "status": "in_progress", "output": []})
        for index, item in enumerate(result["output"]):
            where = {"item_id": item["id"], "output_index": index}
            if item["type"] == "message":
                yield event("response.output_item.added", output_index=index,
                            item={**item, "status": "in_progress", "content": []})
                for n, token in enumerate(reply.tokens()):
                    if reply.drop_after is not None and n >= reply.drop_after:
                        raise ConnectionAbortedError("scripted mid-stream disconnect")
                    if reply.token_delay:
                        await asyncio.sleep(reply.token_delay)
                    script.token_times.append(time.monotonic())
                    yield event("response.output_text.delta", **where, content_index=0, delta=token, logprobs=[])
            else:
                yield event("response.output_item.added", output_index=index, item=item)
            yield event("response.output_item.done", output_index=index, item=item)
        yield event("response.incomplete" if result["status"] == "incomplete" else "response.completed",
                    response=result)

    async def _tool(self, request: Request) -> Response:
        name = request.path_params["name"]
        behaviour = self.tools[name]
        hit = ToolHit(request.headers.get("idempotency-key"), await request.json(), dict(request.headers),
                      time.monotonic())
        self.tool_hits[name].append(hit)
        if behaviour.delay and not await self._wait_or_abort(request, behaviour.delay):
            return Response(status_code=499)
        hit.finished = time.monotonic()
        if behaviour.status != 200:
            return JSONResponse({"detail": "scripted tool failure"}, status_code=behaviour.status)
        body = behaviour.body if behaviour.body is not None else json.dumps({"tool": name, "args": hit.arguments})
        return Response(body, media_type="application/json")
