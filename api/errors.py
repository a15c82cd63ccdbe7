"""The one place errors become OpenAI-style envelopes."""

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from core.errors import AgentRunnerError, InvalidCacheControl, InvalidRequest, ServiceUnavailable, error_type_for
from core.metrics import Metrics

log = logging.getLogger("agentrunner.api")

# SQLSTATEs of a server that is not there to answer: connection exceptions, and shutting down or starting up.
_PG_GONE = ("08", "57P01", "57P02", "57P03")
_TEMPORAL_GONE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})


def outage(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 for an error that means PostgreSQL or Temporal is out of reach, or None for any other error."""
    pg = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated) or isinstance(exc, sa_exc.TimeoutError) \
            or isinstance(pg, psycopg.InterfaceError) \
            or (isinstance(pg, psycopg.OperationalError) and (pg.sqlstate or "08").startswith(_PG_GONE)):
        return ServiceUnavailable("The database is unavailable; retry shortly.")
    # A lazily connected client that has not reached the server yet raises this instead of an RPCError.
    if (isinstance(exc, RPCError) and exc.status in _TEMPORAL_GONE) or \
            (isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect")):
        return ServiceUnavailable("Temporal is unavailable; retry shortly.")
    return None


def _envelope(err: AgentRunnerError) -> JSONResponse:
    return JSONResponse(err.envelope(), status_code=err.http_status, headers=err.headers)


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Map every failure to `{"error": {message, type, param, code}}` with the right status."""

    @app.exception_handler(AgentRunnerError)
    async def _ours(_: Request, exc: AgentRunnerError) -> JSONResponse:
        if isinstance(exc, InvalidCacheControl):
            metrics.cache_control_rejections.labels(exc.reason).inc()
        return _envelope(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        loc = [p for p in err["loc"] if p not in ("body", "query", "path", "header")]
        param = ".".join(str(p) for p in loc) or None
        return _envelope(InvalidRequest(f"Invalid value for '{param}': {err['msg']}.", param=param,
                                        code="invalid_value"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {"error": {"message": str(exc.detail), "type": error_type_for(exc.status_code), "param": None,
                          "code": None}}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    # Registered by class so they are answered here, not re-raised by Starlette's outermost middleware as
    # an unexpected error would be.
    for cls in (sa_exc.DBAPIError, sa_exc.TimeoutError, psycopg.Error, RPCError, RuntimeError, Exception):
        app.add_exception_handler(cls, _failure)


async def _failure(_: Request, exc: Exception) -> JSONResponse:
    """A dependency's outage is a 503 with Retry-After; anything else an opaque 500."""
    unavailable = outage(exc)
    if unavailable is not None:
        log.warning("answered 503: %s (%s: %s)", unavailable.message, exc.__class__.__name__, exc)
        return _envelope(unavailable)
    log.exception("unhandled error", exc_info=exc)
    body = {"error": {"message": "The server had an error while processing your request.",
                      "type": "server_error", "param": None, "code": None}}
    return JSONResponse(body, status_code=500)
