"""The API's composition root: app factory and lifespan owning the DB engine and Temporal client."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from activities.catalog_cache import CatalogCache
from activities.notifier import EventNotifier
from api.body_limit import BodySizeLimit
from api.errors import install_error_handlers
from api.openapi import install_openapi
from api.request_metrics import RequestMetrics
from api.routes import admin, chat, codec, conversations, health, models, responses
from api.service import ResponseService
from api.stream import EventRelay
from core.metrics import Metrics
from core.settings import Settings
from core.status import OPEN_STATUSES
from core.temporal import connect_temporal
from core.wire import (
    AddItemsRequest,
    CompactRequest,
    CreateConversationRequest,
    CreateResponseRequest,
    UpdateConversationRequest,
)
from db.engine import create_engine, database_url, session_factory
from db.events import delete_expired_events
from db.responses import count_open_responses, delete_ended_unstored

log = logging.getLogger("agentrunner.api")


async def _sweep_forever(service: ResponseService, settings: Settings) -> None:
    """Mark responses whose workflow ended without finalizing; drop event logs past their retention and store-false
    responses whose client did not stay to the end."""
    while True:
        await asyncio.sleep(settings.reconcile_interval_seconds)
        try:
            fixed = await service.reconcile_stale()
            if fixed:
                log.warning("reconciled %d responses left open by their workflows", fixed)
            async with service.sessions() as s:
                await delete_expired_events(s, timedelta(seconds=settings.event_retention_seconds))
                await delete_ended_unstored(s, timedelta(seconds=settings.reconcile_min_age_seconds))
        except Exception:
            log.exception("sweep failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI app; clients are created in the lifespan, not at import."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        # Lazily: the API starts, answers 503 and reports not ready while Temporal is unreachable, and connects
        # when it comes (likewise PostgreSQL: the engine's pool connects on use).
        temporal = await connect_temporal(settings, lazy=True)
        sessions = session_factory(engine)
        notifier = EventNotifier(database_url(settings))
        await notifier.start()
        catalog = CatalogCache(notifier, settings.catalog_cache_seconds)
        service = ResponseService(sessions, engine, temporal, settings, notifier, catalog)
        http = httpx.AsyncClient(timeout=settings.upstream_timeout_seconds)
        app.state.settings, app.state.sessions, app.state.service = settings, sessions, service
        app.state.engine, app.state.catalog = engine, catalog
        app.state.relay = EventRelay(sessions, notifier, settings.sse_keepalive_seconds)
        app.state.http = http
        sweeper = asyncio.create_task(_sweep_forever(service, settings))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await notifier.stop()
            await http.aclose()
            await engine.dispose()

    metrics = Metrics()
    app = FastAPI(title="agentrunner", version="0.1.0", lifespan=lifespan)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    install_error_handlers(app, metrics)
    for module in (responses, conversations, chat, models, admin, health):
        app.include_router(module.router)
    codec.install(app, settings)  # the Temporal UI's remote codec, with its own CORS
    install_openapi(app, [CreateResponseRequest, CompactRequest, CreateConversationRequest,
                          UpdateConversationRequest, AddItemsRequest])

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus text format; open responses are counted in PostgreSQL at scrape time."""
        async with app.state.sessions() as s:
            open_counts = await count_open_responses(s)
        for status in OPEN_STATUSES:
            metrics.responses_open.labels(status).set(open_counts.get(status, 0))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
