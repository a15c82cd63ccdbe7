"""The one place errors become OpenAI-style envelopes."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import AgentRunnerError, InvalidCacheControl, InvalidRequest, error_type_for
from core.metrics import Metrics

log = logging.getLogger("agentrunner.api")


def _envelope(err: AgentRunnerError) -> JSONResponse:
    return JSONResponse(err.envelope(), status_code=err.http_status)


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

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        body = {"error": {"message": "The server had an error while processing your request.",
                          "type": "server_error", "param": None, "code": None}}
        return JSONResponse(body, status_code=500)
