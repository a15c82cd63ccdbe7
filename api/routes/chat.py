"""/v1/chat/completions: a passthrough with the same keys and model routing as /v1/responses.

Not durable (no workflow): one upstream call, relayed as it comes, including its errors and its stream.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from openai.types.chat import ChatCompletion
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import AppSettings, Catalog, Db, Http, Owner, read_json
from api.prepare import require_model
from core.contracts import UpstreamFailure
from core.errors import InvalidRequest, UpstreamError
from core.ids import new_id
from core.model_target import ModelTarget
from core.scripted import scripted_completion

router = APIRouter(prefix="/v1/chat", tags=["chat"])


@router.post("/completions", response_model=None, responses={200: {"model": ChatCompletion, "content": {
    "text/event-stream": {"schema": {"type": "string", "description": "chat.completion.chunk events"}}}}})
async def chat_completions(request: Request, owner: Owner, s: Db, settings: AppSettings, http: Http,
                           catalog: Catalog) -> Response:
    """Route by `model` like /v1/responses and relay the upstream's answer (JSON or SSE)."""
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    if not isinstance(body.get("messages"), list):
        raise InvalidRequest("Missing required parameter: 'messages'.", param="messages",
                             code="missing_required_parameter")
    target = await require_model(s, settings, body["model"], owner, catalog)
    if target.base_url is None:
        return _scripted(body)
    return await _relay(http, target, body, settings.upstream_timeout_seconds, settings.sse_keepalive_seconds)


def _scripted(body: dict[str, Any]) -> Response:
    completion = scripted_completion(body["messages"], body.get("tools") or [], new_id("call"),
                                     tool_choice=body.get("tool_choice"), response_format=body.get("response_format"))
    head = {"id": new_id("chatcmpl"), "created": int(time.time()), "model": body["model"]}
    if not body.get("stream"):
        return JSONResponse({**head, "object": "chat.completion", **completion})
    choice = completion["choices"][0]

    def chunk(delta: dict[str, Any], finish: str | None) -> ServerSentEvent:
        return ServerSentEvent(json.dumps({**head, "object": "chat.completion.chunk",
                                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))

    message = choice["message"]
    frames = [chunk({"role": "assistant", "content": message.get("content") or ""}, None)]
    for i, call in enumerate(message.get("tool_calls") or []):
        frames.append(chunk({"tool_calls": [{"index": i, **call}]}, None))
    frames.append(chunk({}, choice["finish_reason"]))
    # Usage on every stream, as the relay asks of upstreams.
    frames.append(ServerSentEvent(json.dumps({**head, "object": "chat.completion.chunk", "choices": [],
                                              "usage": completion["usage"]})))
    frames.append(ServerSentEvent("[DONE]"))
    return EventSourceResponse(iter(frames), sep="\n")


async def _relay(http: httpx.AsyncClient, target: ModelTarget, body: dict[str, Any],
                 timeout_seconds: float, keepalive_seconds: float) -> Response:
    forwarded = {**body, "model": target.upstream_model}
    if body.get("stream"):  # usage on every stream, so token and cache accounting never misses one
        forwarded["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    upstream = http.build_request("POST", target.completions_url, json=forwarded, headers=target.headers,
                                  timeout=timeout_seconds)
    try:
        resp = await http.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        raise UpstreamError(502, f"The upstream model could not be reached: {exc.__class__.__name__}.") from exc
    if resp.status_code >= 400 or not body.get("stream"):
        content = await resp.aread()
        await resp.aclose()
        if resp.status_code >= 400:
            f = UpstreamFailure.from_body(resp.status_code, content.decode(errors="replace"), resp.reason_phrase)
            raise UpstreamError.from_failure(f.model_dump(), f.message)
        return Response(content, status_code=resp.status_code, media_type="application/json")

    return StreamingResponse(_with_keepalive(resp, keepalive_seconds), media_type="text/event-stream")


async def _with_keepalive(resp: httpx.Response, keepalive_seconds: float) -> AsyncIterator[bytes]:
    """The upstream's SSE bytes as they come, with a `: ping` comment after each `keepalive_seconds` of silence.

    A comment goes only between events, never inside one the upstream has begun to send.
    """
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for chunk in resp.aiter_raw():
                await queue.put(chunk)
        finally:
            await queue.put(None)

    # The read runs on its own so that a timeout waiting for the next chunk never cancels a read in progress.
    reader = asyncio.create_task(pump())
    at_boundary = True
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(queue.get(), keepalive_seconds)
            except TimeoutError:
                if at_boundary:
                    yield b": ping\n\n"
                continue
            if chunk is None:
                break
            at_boundary = chunk.endswith((b"\n\n", b"\r\n\r\n"))
            yield chunk
        await reader  # re-raises a failed read
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await resp.aclose()
