"""Calls to an upstream: OpenAI-compatible /chat/completions, or a native /responses. No retries here: Temporal
owns them."""

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from datetime import timedelta
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from temporalio.exceptions import ApplicationError

from core.contracts import UpstreamFailure
from core.ids import new_id
from core.model_target import ModelTarget
from core.scripted import scripted_completion

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def _retry_delay(resp: httpx.Response) -> timedelta | None:
    """The delay an upstream asked for (`retry-after-ms`, or `retry-after` in seconds)."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = resp.headers.get(header)
        if value is None:
            continue
        try:
            return timedelta(seconds=max(float(value) * scale, 0.0))
        except ValueError:
            continue  # an HTTP date: let the retry policy decide
    return None


def failure_from_response(resp: httpx.Response) -> UpstreamFailure:
    """The upstream's error as it reported it."""
    return UpstreamFailure.from_body(resp.status_code, resp.text, resp.reason_phrase)


def error_for_response(resp: httpx.Response) -> ApplicationError:
    """An upstream's 4xx/5xx answer: 408/409/429/5xx retryable (after its Retry-After), other 4xx final."""
    status = resp.status_code
    return upstream_error(failure_from_response(resp), retryable=status in RETRYABLE_STATUSES or status >= 500,
                          delay=_retry_delay(resp))


def upstream_error(failure: UpstreamFailure, *, retryable: bool, delay: timedelta | None = None) -> ApplicationError:
    """An ApplicationError carrying the failure, retryable or not."""
    return ApplicationError(
        f"upstream {failure.status}: {failure.message}", failure.model_dump(), type="UpstreamError",
        non_retryable=not retryable, next_retry_delay=delay,
    )


def model_unavailable(alias: str) -> ApplicationError:
    """The final error of a step whose model alias nothing serves (any more)."""
    return upstream_error(UpstreamFailure(status=400, message=f"model {alias!r} is not available",
                                          code="model_not_found"), retryable=False)


async def complete(http: httpx.AsyncClient, target: ModelTarget, payload: dict[str, Any],
                   timeout_seconds: float) -> dict[str, Any]:
    """A chat completion from the target: the built-in scripted model, or the upstream over HTTP."""
    if target.base_url is None:
        return scripted_completion(payload["messages"], payload.get("tools", []), new_id("call"),
                                   tool_choice=payload.get("tool_choice"),
                                   response_format=payload.get("response_format"))
    return await chat_completion(http, target, payload, timeout_seconds)


async def _post(http: httpx.AsyncClient, url: str, target: ModelTarget, payload: dict[str, Any],
                timeout_seconds: float) -> dict[str, Any]:
    """POST and return the JSON object answered, raising ApplicationError on any failure."""
    try:
        resp = await http.post(url, json=payload, headers=target.headers, timeout=timeout_seconds)
    except httpx.TimeoutException as exc:
        raise upstream_error(UpstreamFailure(status=504, message=f"upstream timed out: {exc!r}"),
                             retryable=True) from exc
    except httpx.HTTPError as exc:
        raise upstream_error(UpstreamFailure(status=502, message=f"upstream unreachable: {exc!r}"),
                             retryable=True) from exc
    if resp.status_code >= 400:
        raise error_for_response(resp)
    try:
        body = resp.json()
    except json.JSONDecodeError as exc:
        raise upstream_error(UpstreamFailure(status=502, message="upstream sent a body that is not JSON"),
                             retryable=True) from exc
    if not isinstance(body, dict):
        raise upstream_error(UpstreamFailure(status=502, message="upstream sent JSON that is not an object"),
                             retryable=True)
    return body


async def chat_completion(http: httpx.AsyncClient, target: ModelTarget, payload: dict[str, Any],
                          timeout_seconds: float) -> dict[str, Any]:
    """POST one chat completion and return its JSON, raising ApplicationError on any failure."""
    assert target.base_url is not None
    body = await _post(http, target.completions_url, target, payload, timeout_seconds)
    if not body.get("choices"):
        raise upstream_error(UpstreamFailure(status=502, message="upstream answer has no choices"),
                             retryable=True)
    return body


async def create_response(http: httpx.AsyncClient, target: ModelTarget, payload: dict[str, Any],
                          timeout_seconds: float) -> dict[str, Any]:
    """POST one request to a Responses upstream and return the finished Response object."""
    return finished(await _post(http, target.responses_url, target, {**payload, "stream": False}, timeout_seconds))


def finished(response: dict[str, Any]) -> dict[str, Any]:
    """A Responses upstream's result if it ended completed or incomplete; its failure as an ApplicationError."""
    status = response.get("status")
    if status in ("completed", "incomplete") and isinstance(response.get("output"), list):
        return response
    if status == "failed":
        error = response.get("error") or {}
        code = error.get("code")
        # A rate limit or a server error of the upstream's model passes; anything else is about the request.
        retryable = code in (None, "server_error", "rate_limit_exceeded", "vector_store_timeout")
        raise upstream_error(UpstreamFailure(status=502 if retryable else 400,
                                             message=f"upstream response failed: {error.get('message', '')}",
                                             code=code), retryable=retryable)
    raise upstream_error(UpstreamFailure(status=502, message=f"upstream response ended {status!r}"), retryable=True)


_DONE: dict[str, Any] = {}  # what _sse yields for a `[DONE]` line


async def _sse(http: httpx.AsyncClient, url: str, target: ModelTarget, body: dict[str, Any],
               timeout_seconds: float) -> AsyncGenerator[dict[str, Any]]:
    """POST for an event stream and yield each event's JSON data (`_DONE` for `[DONE]`); failures raise."""
    try:
        # aconnect_sse writes Accept/Cache-Control into the headers dict it is given: hand it a copy.
        async with aconnect_sse(http, "POST", url, json=body, headers=dict(target.headers),
                                timeout=timeout_seconds) as event_source:
            resp = event_source.response
            # Before iterating: aiter_sse rejects a body that is not text/event-stream (SSEError), and an
            # upstream's error usually is JSON, whose status and message must reach the caller as they were.
            if resp.status_code >= 400:
                await resp.aread()
                raise error_for_response(resp)
            async for sse in event_source.aiter_sse():
                if not sse.data:
                    continue  # an event without data (e.g. a named keep-alive) carries nothing
                data = _DONE if sse.data.strip() == "[DONE]" else json.loads(sse.data)
                if not isinstance(data, dict):
                    raise upstream_error(UpstreamFailure(status=502, message="upstream event is not an object"),
                                         retryable=True)
                yield data
    except httpx.TimeoutException as exc:
        raise upstream_error(UpstreamFailure(status=504, message=f"upstream timed out: {exc!r}"),
                             retryable=True) from exc
    except (httpx.HTTPError, json.JSONDecodeError) as exc:  # SSEError (a 2xx that is no event stream) is one
        raise upstream_error(UpstreamFailure(status=502, message=f"upstream stream broken: {exc!r}"),
                             retryable=True) from exc


def _stream_error(message: Any) -> ApplicationError:
    return upstream_error(UpstreamFailure(status=502, message=f"upstream stream error: {message}"), retryable=True)


async def stream_chat_completion(http: httpx.AsyncClient, target: ModelTarget, payload: dict[str, Any],
                                 timeout_seconds: float) -> AsyncIterator[dict[str, Any]]:
    """POST a streaming chat completion and yield its chunks; a cut-off stream raises a retryable error."""
    assert target.base_url is not None
    body = {**payload, "stream": True, "stream_options": {"include_usage": True}}
    async with aclosing(_sse(http, target.completions_url, target, body, timeout_seconds)) as chunks:
        async for chunk in chunks:
            if chunk is _DONE:
                return
            if chunk.get("error"):
                err = chunk["error"]
                raise _stream_error(err.get("message", str(err)) if isinstance(err, dict) else err)
            yield chunk
    raise upstream_error(UpstreamFailure(status=502, message="upstream stream ended without [DONE]"),
                         retryable=True)


TERMINAL_UPSTREAM_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


async def stream_response(http: httpx.AsyncClient, target: ModelTarget, payload: dict[str, Any],
                          timeout_seconds: float) -> AsyncIterator[dict[str, Any]]:
    """POST a streaming request to a Responses upstream and yield its events, ending with the terminal one (whose
    response has ended well: a failure raises); a stream cut off before it raises a retryable error."""
    async with aclosing(_sse(http, target.responses_url, target, {**payload, "stream": True},
                             timeout_seconds)) as events:
        async for event in events:
            kind = event.get("type")
            if kind == "error":
                raise _stream_error(event.get("message") or event)
            if kind in TERMINAL_UPSTREAM_EVENTS:
                finished(event.get("response") or {})
                yield event
                return
            if event is not _DONE:
                yield event
    raise upstream_error(UpstreamFailure(status=502, message="upstream stream ended before the response did"),
                         retryable=True)
