"""Client-side measurements: one request timed, a stream's token latencies, a closed loop at saturation."""

import asyncio
import itertools
import json
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.upstream import TOOL, Behaviour


def quantile(xs: list[float], q: float) -> float:
    """The q-quantile for a whole percentile q (0.5, 0.99), interpolated linearly between closest ranks."""
    if len(xs) < 2:  # statistics.quantiles needs two points
        return float(xs[0]) if xs else math.nan
    # "inclusive" treats the sample as the population: p99 of a dozen latencies stays between the two largest,
    # where the default "exclusive" would extrapolate beyond the slowest one seen.
    return statistics.quantiles(xs, n=100, method="inclusive")[round(q * 100) - 1]


def summary(xs: list[float]) -> dict[str, float]:
    """p50, p99 and count of a sample (milliseconds in, milliseconds out)."""
    return {"p50": statistics.median(xs) if xs else math.nan, "p99": quantile(xs, 0.99), "n": len(xs)}


@dataclass
class Target:
    """Somewhere a Responses or Chat Completions request can be sent."""

    name: str
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    model_prefix: str = ""  # ogx serves the upstream's models as `<provider_id>/<name>`

    def model(self, b: Behaviour) -> str:
        """The model name this target serves the behaviour under."""
        return self.model_prefix + b.model


def responses_body(b: Behaviour, *, stream: bool = False, background: bool = False,
                   model: str | None = None) -> dict[str, Any]:
    """A /v1/responses request for this behaviour (under `model` if given); tool steps use the registered
    `bench_echo` tool."""
    body: dict[str, Any] = {"model": model or b.model, "input": "go"}
    if b.steps:
        body["tools"] = [{"type": "function", "name": TOOL}]
    if stream:
        body["stream"] = True
    if background:
        body["background"] = True
    return body


async def timed_response(http: httpx.AsyncClient, t: Target, b: Behaviour) -> float:
    """Milliseconds for one blocking /v1/responses request, which must complete."""
    start = time.perf_counter()
    r = await http.post(t.base_url + "/v1/responses", json=responses_body(b, model=t.model(b)), headers=t.headers)
    elapsed = (time.perf_counter() - start) * 1000
    r.raise_for_status()
    if r.json()["status"] != "completed":
        raise RuntimeError(f"{t.name}: response ended {r.json()['status']}")
    return elapsed


async def timed_direct(http: httpx.AsyncClient, upstream: str, b: Behaviour,
                       call_tool: Callable[[str], Awaitable[str]] | None = None,
                       start: float | None = None) -> float:
    """Milliseconds for the same work done by the client itself: model call, tool call, … , final model call.

    `call_tool` runs one call (its arguments JSON in, output out); by default the upstream's `bench_echo` over HTTP.
    """
    start = time.perf_counter() if start is None else start
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    while True:
        r = await http.post(upstream + "/v1/chat/completions", json={"model": b.model, "messages": messages})
        r.raise_for_status()
        message = r.json()["choices"][0]["message"]
        if not message.get("tool_calls"):
            return (time.perf_counter() - start) * 1000
        messages.append(message)
        for call in message["tool_calls"]:
            if call_tool is not None:
                output = await call_tool(call["function"]["arguments"])
            else:
                out = await http.post(f"{upstream}/tools/{TOOL}", content=call["function"]["arguments"])
                out.raise_for_status()
                output = out.text
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})


@dataclass
class StreamTiming:
    """Milliseconds from the upstream sending its first token to the client reading it; gaps between deltas."""

    first_token_ms: float
    gaps_ms: list[float]


async def timed_stream(http: httpx.AsyncClient, t: Target, b: Behaviour, *, chat: bool = False) -> StreamTiming:
    """Stream one response (or, with chat=True, one chat completion) and time its text deltas."""
    if chat:
        path, body = "/v1/chat/completions", {"model": b.model, "stream": True,
                                              "messages": [{"role": "user", "content": "go"}]}
    else:
        path, body = "/v1/responses", responses_body(b, stream=True, model=t.model(b))
    arrivals: list[int] = []
    first_sent = 0
    async with http.stream("POST", t.base_url + path, json=body, headers=t.headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            now = time.monotonic_ns()
            event = json.loads(line[5:])
            # Whitespace alone carries no token: ogx holds each token's trailing space back to the next delta and
            # sends the last one as a delta of its own, which would count as a ~0 ms gap.
            text = _delta_text(event, chat).strip()
            if text:
                if not arrivals:
                    first_sent = int(text.split()[0])
                arrivals.append(now)
    if not arrivals:
        raise RuntimeError(f"{t.name}: no text delta")
    gaps = [(b_ - a) / 1e6 for a, b_ in itertools.pairwise(arrivals)]
    return StreamTiming((arrivals[0] - first_sent) / 1e6, gaps)


def _delta_text(event: dict[str, Any], chat: bool) -> str:
    if chat:
        choices = event.get("choices") or [{}]
        return str(choices[0].get("delta", {}).get("content") or "")
    return str(event.get("delta") or "") if event.get("type") == "response.output_text.delta" else ""


@dataclass
class LoopResult:
    """A closed loop's outcome: completions per second over the measured window."""

    completed: int
    errors: int
    seconds: float
    probes: tuple[Any, Any] = (None, None)  # what `probe` returned at the window's start and end

    @property
    def per_second(self) -> float:
        """Completed requests per second."""
        return self.completed / self.seconds

    def probed_ms_per_request(self) -> dict[str, float]:
        """How much each counter the probe returned (seconds, by name) grew over the window, in ms per completed
        request."""
        before, after = self.probes
        return {k: (after[k] - before[k]) * 1000 / max(self.completed, 1) for k in after}


async def closed_loop(request: Callable[[], Awaitable[object]], concurrency: int, seconds: float,
                      warmup: float = 2.0, probe: Callable[[], Any] = lambda: None) -> LoopResult:
    """`concurrency` clients each sending the next request as soon as the last one ends; counts only the
    requests that finish inside the window after the warm-up, and calls `probe` as the window opens and closes."""
    start = time.monotonic()
    window = (start + warmup, start + warmup + seconds)
    completed = errors = 0

    async def probe_at_edges() -> tuple[Any, Any]:
        await asyncio.sleep(warmup)
        first = probe()
        await asyncio.sleep(seconds)
        return first, probe()

    async def client() -> None:
        nonlocal completed, errors
        while time.monotonic() < window[1]:
            try:
                await request()
            except (httpx.HTTPError, RuntimeError):
                errors += 1
                continue
            if window[0] <= time.monotonic() <= window[1]:
                completed += 1

    probes, *_ = await asyncio.gather(probe_at_edges(), *(client() for _ in range(concurrency)))
    return LoopResult(completed, errors, seconds, probes)
