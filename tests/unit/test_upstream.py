"""The upstream client against an in-process httpx.MockTransport: success, error mapping, SSE parsing."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.upstream import chat_completion, stream_chat_completion
from core.model_target import ModelTarget

TARGET = ModelTarget("alias", "up-model", "http://upstream.test/v1", "sk-test")
PAYLOAD: dict[str, Any] = {"model": "up-model", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = {"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                                   "finish_reason": "stop"}]}
SSE = {"content-type": "text/event-stream"}
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def openai_error(message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def chunk(content: str) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}


def sse_body(*chunks: dict[str, Any], done: bool = True) -> bytes:
    events = [f"data: {json.dumps(c)}\n\n" for c in chunks] + (["data: [DONE]\n\n"] if done else [])
    return "".join(events).encode()


async def complete(handler: Handler) -> dict[str, Any]:
    async with client(handler) as http:
        return await chat_completion(http, TARGET, PAYLOAD, 5.0)


async def stream(handler: Handler) -> list[dict[str, Any]]:
    async with client(handler) as http:
        return [c async for c in stream_chat_completion(http, TARGET, PAYLOAD, 5.0)]


def failure(err: ApplicationError) -> dict[str, Any]:
    """The UpstreamFailure the error carries, as the API reads it back."""
    assert err.type == "UpstreamError"
    details: dict[str, Any] = err.details[0]
    return details


# --- blocking calls ---------------------------------------------------------------------------------------------

async def test_success_returns_the_json_and_sends_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ANSWER)

    assert await complete(handler) == ANSWER
    assert str(seen[0].url) == "http://upstream.test/v1/chat/completions"
    assert seen[0].headers["authorization"] == "Bearer sk-test"
    assert json.loads(seen[0].content) == PAYLOAD


async def test_429_is_retryable_after_retry_after_seconds() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "2"},
                              json=openai_error("Rate limit reached", "rate_limit_error", "rate_limit_exceeded"))

    with pytest.raises(ApplicationError) as info:
        await complete(handler)
    assert info.value.non_retryable is False
    assert info.value.next_retry_delay == timedelta(seconds=2)
    assert failure(info.value) == {"status": 429, "message": "Rate limit reached", "type": "rate_limit_error",
                                   "code": "rate_limit_exceeded", "param": None}


async def test_retry_after_ms_wins_over_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"retry-after-ms": "1500", "retry-after": "9"}, text="overloaded")

    with pytest.raises(ApplicationError) as info:
        await complete(handler)
    assert info.value.non_retryable is False
    assert info.value.next_retry_delay == timedelta(milliseconds=1500)


async def test_400_is_final_with_the_upstreams_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=openai_error("bad temperature", code="invalid_value", param="temperature"))

    with pytest.raises(ApplicationError) as info:
        await complete(handler)
    assert info.value.non_retryable is True
    assert info.value.next_retry_delay is None
    assert failure(info.value) == {"status": 400, "message": "bad temperature", "type": "invalid_request_error",
                                   "code": "invalid_value", "param": "temperature"}


async def test_503_without_body_is_retryable_with_the_reason_phrase() -> None:
    with pytest.raises(ApplicationError) as info:
        await complete(lambda request: httpx.Response(503))
    assert info.value.non_retryable is False
    assert info.value.next_retry_delay is None  # no Retry-After: the activity's retry policy decides
    assert failure(info.value)["status"] == 503
    assert failure(info.value)["message"] == "Service Unavailable"


async def test_a_body_that_is_not_json_is_a_retryable_502() -> None:
    with pytest.raises(ApplicationError) as info:
        await complete(lambda request: httpx.Response(200, text="<html>gateway</html>"))
    assert info.value.non_retryable is False
    assert failure(info.value)["status"] == 502
    assert "not JSON" in failure(info.value)["message"]


async def test_a_body_without_choices_is_a_retryable_502() -> None:
    with pytest.raises(ApplicationError) as info:
        await complete(lambda request: httpx.Response(200, json={"id": "c1", "choices": []}))
    assert info.value.non_retryable is False
    assert failure(info.value)["status"] == 502
    assert "no choices" in failure(info.value)["message"]


@pytest.mark.parametrize("call", [complete, stream], ids=["blocking", "streaming"])
@pytest.mark.parametrize(("error", "status"), [(httpx.ReadTimeout, 504), (httpx.ConnectError, 502)],
                         ids=["timeout", "connect-error"])
async def test_transport_failures_are_retryable(call: Callable[[Handler], Awaitable[Any]],
                                                error: type[httpx.TransportError], status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("the network failed", request=request)

    with pytest.raises(ApplicationError) as info:
        await call(handler)
    assert info.value.non_retryable is False
    assert failure(info.value)["status"] == status


# --- streaming calls --------------------------------------------------------------------------------------------

async def test_stream_yields_chunks_in_order_and_asks_for_usage() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers=SSE, content=sse_body(chunk("a"), chunk("b"), chunk("c")))

    assert await stream(handler) == [chunk("a"), chunk("b"), chunk("c")]
    sent = json.loads(seen[0].content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert seen[0].headers["authorization"] == "Bearer sk-test"
    assert TARGET.headers == {"Authorization": "Bearer sk-test"}  # the SSE client's Accept header stays out


async def test_stream_reassembles_events_split_across_network_reads() -> None:
    body = sse_body(chunk("a"), chunk("b"))

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i:i + 7]

    got = await stream(lambda request: httpx.Response(200, headers=SSE, content=pieces()))
    assert got == [chunk("a"), chunk("b")]


async def test_stream_joins_a_multi_line_data_event() -> None:
    # One event, two `data:` lines: per the SSE spec its data is the lines joined by "\n", one JSON document.
    first = json.dumps(chunk("x"))
    cut = first.index('"choices"')
    body = f"data: {first[:cut]}\ndata: {first[cut:]}\n\ndata: [DONE]\n\n".encode()
    assert await stream(lambda request: httpx.Response(200, headers=SSE, content=body)) == [chunk("x")]


async def test_stream_ignores_comments_and_other_fields() -> None:
    body = b": keep-alive\n\nevent: ping\n\nid: 1\nretry: 100\n" + sse_body(chunk("a"))
    assert await stream(lambda request: httpx.Response(200, headers=SSE, content=body)) == [chunk("a")]


async def test_done_ends_the_stream() -> None:
    body = sse_body(chunk("a")) + f"data: {json.dumps(chunk('after'))}\n\n".encode()
    assert await stream(lambda request: httpx.Response(200, headers=SSE, content=body)) == [chunk("a")]


async def test_a_stream_without_done_is_a_retryable_502() -> None:
    body = sse_body(chunk("a"), done=False)
    got: list[dict[str, Any]] = []
    with pytest.raises(ApplicationError) as info:
        async with client(lambda request: httpx.Response(200, headers=SSE, content=body)) as http:
            async for c in stream_chat_completion(http, TARGET, PAYLOAD, 5.0):
                got.append(c)
    assert got == [chunk("a")]
    assert info.value.non_retryable is False
    assert failure(info.value)["status"] == 502
    assert "without [DONE]" in failure(info.value)["message"]


async def test_an_error_chunk_is_retryable() -> None:
    body = sse_body(chunk("a"), {"error": {"message": "model overloaded", "type": "server_error"}})
    with pytest.raises(ApplicationError) as info:
        await stream(lambda request: httpx.Response(200, headers=SSE, content=body))
    assert info.value.non_retryable is False
    assert failure(info.value)["status"] == 502
    assert "model overloaded" in failure(info.value)["message"]


async def test_a_chunk_that_is_not_json_is_a_retryable_502() -> None:
    body = b"data: {not json\n\ndata: [DONE]\n\n"
    with pytest.raises(ApplicationError) as info:
        await stream(lambda request: httpx.Response(200, headers=SSE, content=body))
    assert info.value.non_retryable is False
    assert failure(info.value)["status"] == 502


async def test_stream_429_is_retryable_after_its_delay() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "3"}, json=openai_error("slow down", "rate_limit_error"))

    with pytest.raises(ApplicationError) as info:
        await stream(handler)
    assert info.value.non_retryable is False
    assert info.value.next_retry_delay == timedelta(seconds=3)
    assert failure(info.value)["status"] == 429
    assert failure(info.value)["message"] == "slow down"


async def test_stream_json_error_body_keeps_the_upstreams_status_and_message() -> None:
    # An error answered as application/json must not turn into httpx-sse's content-type complaint.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json=openai_error("The model `nope` does not exist", code="model_not_found"))

    with pytest.raises(ApplicationError) as info:
        await stream(handler)
    assert info.value.non_retryable is True
    assert failure(info.value)["status"] == 404
    assert failure(info.value)["message"] == "The model `nope` does not exist"
    assert failure(info.value)["code"] == "model_not_found"


async def test_stream_200_that_is_not_an_event_stream_is_a_retryable_502() -> None:
    with pytest.raises(ApplicationError) as info:
        await stream(lambda request: httpx.Response(200, json=ANSWER))
    assert info.value.non_retryable is False
    assert failure(info.value)["status"] == 502

