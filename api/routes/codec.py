"""The Temporal UI's remote codec: decoded payloads show each step's real content, loaded from PostgreSQL.

The UI (and `temporal --codec-endpoint`) POSTs `{"payloads": [{"metadata": {k: base64}, "data": base64}]}` to
`<endpoint>/decode` with `X-Namespace` (and `Authorization` when configured) and shows what comes back in the same
shape. Our payloads are pydantic JSON holding ids only (history stays small); decoding adds the content they refer
to: a step reference (`response_id` + `seq`: a model turn, a tool result, a step's input) gets `"step"`, the step as
`GET /v1/responses/{id}/steps?include=step_details` shows it (the messages the model was sent and its answer items;
a tool call's arguments, output and error); a response reference (the workflow's input and result) gets
`"response"` (its status, input and output items); the `steps` query's answer gets `"step"` on each of its steps.
Anything else (another namespace, other encodings, the SDK's own payloads, a response that is gone) comes back
unchanged. `/encode` is the identity: nothing we store is encoded.

Who may call it: the admin token (`Authorization: Bearer <admin token>`, as the admin API), and with
`AGENTRUNNER_CODEC_ALLOW_LOOPBACK` (`agentrunner dev` turns it on) a loopback caller without a token whose
`Origin`, if any, is a UI origin CORS allows. CORS (`AGENTRUNNER_CODEC_CORS_ORIGINS`) covers only these routes.
"""

import base64
import binascii
import ipaddress
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import AppSettings, Db, require_admin
from api.steps import StepObject, list_steps
from core.settings import Settings
from db import responses as db
from db.tables import Response

CODEC_PATH = "/codec"  # the UI's codec endpoint is http://<api>/codec (it appends /decode and /encode)
_JSON = "json/plain"
_RESPONSE_PREFIX = "resp_"
# The headers the UI sends (Authorization and Authorization-Extras only with its "pass access token" option).
_UI_HEADERS = ["Authorization", "Authorization-Extras", "Content-Type", "X-Namespace"]


class CodecPayload(BaseModel):
    """A Temporal payload in proto3 JSON: metadata values and data are base64."""

    model_config = ConfigDict(extra="allow")  # e.g. externalPayloads: passed back as they came

    metadata: dict[str, str] = {}
    data: str = ""


class CodecPayloads(BaseModel):
    """The codec protocol's body, request and answer alike."""

    payloads: list[CodecPayload]


def _loopback(host: str | None) -> bool:
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def codec_caller(request: Request, settings: AppSettings) -> None:
    """The admin token; or, with the dev setting, a loopback caller without a token (from a UI origin, if a
    browser's). Everyone else gets the admin API's 401/403 envelope."""
    origin = request.headers.get("origin")
    if ("authorization" not in request.headers and settings.codec_allow_loopback
            and _loopback(request.client.host if request.client else None)
            and (origin is None or origin in settings.codec_cors_origins)):
        return
    require_admin(request, settings)


router = APIRouter(prefix=CODEC_PATH, tags=["codec"], dependencies=[Depends(codec_caller)])


def _json_of(payload: CodecPayload) -> Any:
    """The payload's JSON value if it is a json/plain payload, else None."""
    try:
        if base64.b64decode(payload.metadata.get("encoding", "")) != _JSON.encode():
            return None
        return json.loads(base64.b64decode(payload.data))
    except (binascii.Error, ValueError):
        return None


def _response_id(value: Any) -> str | None:
    """The response a payload of ours refers to."""
    if isinstance(value, dict):
        rid = value.get("response_id")
        if isinstance(rid, str) and rid.startswith(_RESPONSE_PREFIX):
            return rid
    return None


class _Stored:
    """What PostgreSQL holds about the responses one request refers to, each loaded once."""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s
        self._rows: dict[str, Response | None] = {}
        self._responses: dict[str, dict[str, Any] | None] = {}
        self._steps: dict[str, dict[int, dict[str, Any]]] = {}

    async def _row(self, rid: str) -> Response | None:
        if rid not in self._rows:
            self._rows[rid] = await db.get_response(self.s, rid)
        return self._rows[rid]

    async def response(self, rid: str) -> dict[str, Any] | None:
        if rid not in self._responses:
            row = await self._row(rid)
            self._responses[rid] = None if row is None else {
                "status": row.status, "model": row.model, "instructions": row.request.get("instructions"),
                "error": row.error, "incomplete_reason": row.incomplete_reason,
                "input": await db.input_items(self.s, rid), "output": await db.output_items(self.s, rid)}
        return self._responses[rid]

    async def step(self, rid: str, seq: int) -> dict[str, Any] | None:
        if rid not in self._steps:
            row = await self._row(rid)
            steps: list[StepObject] = await list_steps(self.s, row, details=True) if row is not None else []
            self._steps[rid] = {st.seq: st.model_dump(mode="json") for st in steps}
        return self._steps[rid].get(seq)


async def _enriched(value: Any, stored: _Stored) -> Any | None:
    """The value with the content its ids refer to, or None when it is not ours or nothing is stored."""
    rid = _response_id(value)
    if rid is None:
        return None
    if isinstance(value.get("steps"), list) and isinstance(value.get("details"), str):  # the `steps` query
        steps = []
        for trace_step in value["steps"]:
            seq = trace_step.get("seq") if isinstance(trace_step, dict) else None
            found = await stored.step(rid, seq) if isinstance(seq, int) else None
            steps.append({**trace_step, "step": found} if found is not None else trace_step)
        return {**value, "steps": steps}
    if isinstance(value.get("seq"), int):  # a step's input or result
        found = await stored.step(rid, value["seq"])
        return {**value, "step": found} if found is not None else None
    response = await stored.response(rid)  # the workflow's input or result, a status write's input
    return {**value, "response": response} if response is not None else None


def _ours(namespace: str | None, settings: Settings) -> bool:
    return namespace is None or namespace == settings.temporal_namespace


@router.post("/decode", response_model=CodecPayloads, response_model_exclude_unset=True)
async def decode(body: CodecPayloads, s: Db, settings: AppSettings,
                 x_namespace: Annotated[str | None, Header()] = None) -> CodecPayloads:
    """Each payload with the content its ids refer to; what is not ours, unchanged."""
    if not _ours(x_namespace, settings):
        return body
    stored = _Stored(s)
    out = []
    for payload in body.payloads:
        value = _json_of(payload)
        enriched = await _enriched(value, stored) if value is not None else None
        if enriched is None:
            out.append(payload)
            continue
        data = json.dumps(enriched, ensure_ascii=False, separators=(",", ":")).encode()
        out.append(payload.model_copy(update={"data": base64.b64encode(data).decode()}))
    return CodecPayloads(payloads=out)


@router.post("/encode", response_model=CodecPayloads, response_model_exclude_unset=True)
async def encode(body: CodecPayloads) -> CodecPayloads:
    """The identity: our payloads are plain JSON, nothing is encrypted or compressed."""
    return body


class _CodecCors:
    """CORS for the codec routes only (the UI calls them from its own origin); every other route is left as is."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=origins, allow_methods=["POST"], allow_headers=_UI_HEADERS,
                                   allow_credentials=True, max_age=600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == CODEC_PATH or path.startswith(CODEC_PATH + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the codec routes and their CORS to the app."""
    app.include_router(router)
    app.add_middleware(_CodecCors, origins=settings.codec_cors_origins)
