"""What building a response's wire objects as the spec's typed models costs, per response (no processes needed).

Two workloads: a blocking single-step answer (its message item and the Response object it is answered with), and
everything one streamed, 3-step response emits: its items (reasoning, two server-side calls completed by their
tools, the answer), every stream event (the answer in 40 deltas), and the Response object three times (created
and in_progress, completed, and a GET).
"""

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from activities.lifecycle import render_response
from core.convert import completion_to_items
from core.stream_events import (
    SERVER_LABEL,
    call_events,
    item_done,
    lifecycle,
    mcp_call_done,
    message_closed,
    message_opened,
    reasoning_events,
    text_delta,
)
from db.tables import Response

ANSWER_DELTAS = 40


@cache  # a stored row, as read from the database: not part of what is measured
def _row() -> Response:
    now = datetime.now(UTC)
    return Response(id="resp_bench", owner_id="bench", status="completed", model="bench", request_hash="",
                    request={"stream": True, "tools": [{"type": "function", "name": "lookup", "parameters": {}}]},
                    created_at=now, completed_at=now, input_tokens=300, output_tokens=60)


def blocking_response() -> int:
    """Build the wire objects of a blocking single-step answer; how many were built."""
    output = completion_to_items({"content": "word " * ANSWER_DELTAS})
    render_response(_row(), output)
    return len(output) + 1


def streamed_response() -> int:
    """Build every wire object of the workload; how many were built."""
    objects: list[dict[str, Any]] = []
    output: list[dict[str, Any]] = []
    for turn in range(2):
        message = {"reasoning_content": "thinking about it " * 8,
                   "tool_calls": [{"id": f"call_{turn}", "function": {"name": "lookup", "arguments": '{"q":"x"}'}}]}
        items = completion_to_items(message, {"lookup": SERVER_LABEL})
        objects += reasoning_events(len(output), items[0]) + call_events(len(output) + 1, items[1])
        done = mcp_call_done(items[1], '{"answer": 42}', None)
        objects.append(item_done(len(output) + 1, done))
        output += [items[0], done]
    answer = completion_to_items({"content": "word " * ANSWER_DELTAS})[0]
    objects += message_opened(answer["id"], len(output))
    objects += [text_delta(answer["id"], len(output), "word ") for _ in range(ANSWER_DELTAS)]
    objects += message_closed(answer["id"], len(output), answer["content"][0]["text"], "completed")
    output.append(answer)
    row = _row()
    started = render_response(row, [])  # as activities.lifecycle.move_status renders it: once per move
    objects += [lifecycle("response.created", started), lifecycle("response.in_progress", started)]
    objects.append(lifecycle("response.completed", render_response(row, output)))
    objects.append(render_response(row, output))
    return len(objects) + len(output)


def _timed(build: Callable[[], int], n: int) -> dict[str, Any]:
    count = build()  # warm-up (imports, validator construction)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        build()
        times.append((time.perf_counter() - start) * 1e6)
    return {"n": n, "objects": count, "p50_us": statistics.median(times),
            "p99_us": statistics.quantiles(times, n=100, method="inclusive")[98]}


def serialization(n: int) -> dict[str, Any]:
    """Time `n` builds of each workload: microseconds per response (median, p99) and objects built."""
    return {"blocking": _timed(blocking_response, n), "streamed_3_steps": _timed(streamed_response, n)}
