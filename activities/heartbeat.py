"""Keep an activity heartbeating while it awaits I/O, so cancellation and dead workers are noticed."""

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from temporalio import activity

T = TypeVar("T")


async def heartbeating(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro`, heartbeating meanwhile; a cancelled activity aborts it (closing its HTTP request)."""
    info = activity.info()
    timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 10.0
    task = asyncio.ensure_future(coro)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=max(timeout / 4, 0.05))
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
