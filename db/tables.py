"""SQLModel tables: the system of record. The schema itself is created by db/migrations/*.sql."""

from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSONB, nullable=nullable))


def _now() -> Any:
    """A timestamp the database fills in."""
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: str = Field(primary_key=True)
    owner_id: str
    name: str
    key_hash: str
    prefix: str
    created_at: datetime = _now()
    revoked_at: datetime | None = _ts()


class UpstreamModel(SQLModel, table=True):
    __tablename__ = "models"
    alias: str = Field(primary_key=True)
    base_url: str
    upstream_model: str
    api_key: str | None = None
    created_at: datetime = _now()


class Tool(SQLModel, table=True):
    __tablename__ = "tools"
    name: str = Field(primary_key=True)
    description: str = ""
    parameters: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    url: str
    timeout_seconds: float
    secret_header_name: str | None = None
    secret_header_value: str | None = None
    created_at: datetime = _now()


class Response(SQLModel, table=True):
    __tablename__ = "responses"
    id: str = Field(primary_key=True)
    owner_id: str
    status: str
    model: str
    request: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    previous_response_id: str | None = None
    idempotency_key: str | None = None
    request_hash: str
    created_at: datetime = _now()
    updated_at: datetime = _now()
    completed_at: datetime | None = _ts()
    error: dict[str, Any] | None = _json()
    incomplete_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    event_seq: int = 0


class Item(SQLModel, table=True):
    __tablename__ = "items"
    response_id: str = Field(primary_key=True, foreign_key="responses.id")
    direction: str = Field(primary_key=True)
    position: int = Field(primary_key=True)
    id: str
    owner_id: str
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))


class Step(SQLModel, table=True):
    __tablename__ = "steps"
    response_id: str = Field(primary_key=True, foreign_key="responses.id")
    seq: int = Field(primary_key=True)
    kind: str
    state: str
    attempt: int
    tool_name: str | None = None
    call_id: str | None = None
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    error: str | None = None
    result: dict[str, Any] | None = _json()


class ResponseEvent(SQLModel, table=True):
    __tablename__ = "response_events"
    response_id: str = Field(primary_key=True, foreign_key="responses.id")
    seq: int = Field(primary_key=True)
    step_seq: int | None = None
    type: str
    event: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = _now()


TERMINAL_STATUSES = ("completed", "failed", "cancelled", "incomplete")
