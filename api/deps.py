"""FastAPI dependencies: the lifespan's clients, the caller's identity, the admin gate."""

import hmac
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.catalog_cache import CatalogCache
from api.service import ResponseService
from api.stream import EventRelay
from core.errors import Forbidden, InvalidRequest, Unauthorized
from core.ids import hash_secret
from core.settings import Settings
from db.catalog import owner_for_key


# The getters are `async def` though they do no I/O: FastAPI runs a plain `def` dependency on its thread pool, a
# thread hop and a GIL handoff for each one on every request.
async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


async def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    """The session factory owned by the lifespan."""
    return request.app.state.sessions


async def get_catalog(request: Request) -> CatalogCache:
    """The process's catalog cache owned by the lifespan."""
    return request.app.state.catalog


Catalog = Annotated[CatalogCache, Depends(get_catalog)]


async def get_relay(request: Request) -> EventRelay:
    """The SSE relay of event logs owned by the lifespan."""
    return request.app.state.relay


async def get_http(request: Request) -> httpx.AsyncClient:
    """The upstream HTTP client owned by the lifespan (chat completions passthrough)."""
    return request.app.state.http


async def get_service(request: Request) -> ResponseService:
    """The response service owned by the lifespan."""
    return request.app.state.service


async def db_session(sessions: Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)],
                     ) -> AsyncIterator[AsyncSession]:
    """The request's one database session (shared by authentication and the route), closed when the route returns."""
    async with sessions() as s:
        yield s


# Scope "function": closed before a streamed body is sent, so an SSE relay does not pin a pooled connection.
Db = Annotated[AsyncSession, Depends(db_session, scope="function")]


async def read_json(request: Request) -> Any:
    """The request body as JSON; a 400 envelope when it is not."""
    try:
        return json.loads(await request.body())
    except ValueError:
        raise InvalidRequest("We could not parse the JSON body of your request.", code="invalid_json") from None


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.")
    return token.strip()


async def current_owner(request: Request, s: Db, catalog: Catalog) -> str:
    """The owner of the caller's API key; 401 otherwise."""
    secret = _bearer(request)
    owner = await catalog.get(("key", hash_secret(secret)), lambda: owner_for_key(s, secret))
    if owner is None:
        raise Unauthorized("Incorrect API key provided.", code="invalid_api_key")
    return owner


async def catalog_write(catalog: Catalog) -> AsyncIterator[None]:
    """Around an admin request: what this process kept of the catalog is forgotten as soon as the request is done,
    so its next request sees the change (other processes hear of it by NOTIFY)."""
    try:
        yield
    finally:
        catalog.notifier.catalog_changed()


def require_admin(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """The admin token from settings; the admin API is off when none is configured."""
    if not settings.admin_token:
        raise Forbidden("The admin API is disabled: set AGENTRUNNER_ADMIN_TOKEN.")
    if not hmac.compare_digest(_bearer(request), settings.admin_token):
        raise Unauthorized("Incorrect admin token.", code="invalid_admin_token")


Owner = Annotated[str, Depends(current_owner)]
Service = Annotated[ResponseService, Depends(get_service)]
Relay = Annotated[EventRelay, Depends(get_relay)]
Http = Annotated[httpx.AsyncClient, Depends(get_http)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Admin = Depends(require_admin)
CatalogWrite = Depends(catalog_write, scope="function")
