"""Counts and times every HTTP request by route template and status (ASGI middleware)."""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.metrics import Metrics


class RequestMetrics:
    """Labels by the matched route's template (`/v1/responses/{response_id}`), so cardinality stays bounded.

    For a streamed response the time is until its headers went out.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.http_seconds.labels(scope["method"], route).observe(time.monotonic() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.http_requests.labels(scope["method"], route, str(status)).inc()
