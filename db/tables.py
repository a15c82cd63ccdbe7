"""SQLModel tables: the system of record. The schema is created by the Alembic revisions in db/migrations;
tests/test_schema.py proves these declarations describe it exactly."""

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Double, Index, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.model_target import UPSTREAM_APIS
from core.status import OPEN_STATUSES, ResponseStatus


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSONB, nullable=nullable))


def _now() -> Any:
    """A timestamp the database fills in."""
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


def _zero() -> Any:
    """A counter that starts at 0, in Python and in SQL."""
    return Field(default=0, sa_column_kwargs={"server_default": text("0")})


GrantKind = Literal["model", "tool", "mcp_server"]
GRANT_KINDS: tuple[str, ...] = get_args(GrantKind)


def _in(column: str, values: list[str]) -> str:
    """SQL `column IN ('a', 'b')`; values are our own constants, never input."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_hash", name="api_keys_key_hash_key"),)
    id: str = Field(primary_key=True, sa_type=Text)
    owner_id: str = Field(sa_type=Text)
    name: str = Field(sa_type=Text)
    key_hash: str = Field(sa_type=Text)
    prefix: str = Field(sa_type=Text)
    created_at: datetime = _now()
    revoked_at: datetime | None = _ts()


class UpstreamModel(SQLModel, table=True):
    __tablename__ = "models"
    __table_args__ = (CheckConstraint(_in("api", list(UPSTREAM_APIS)), name="models_api_check"),)
    alias: str = Field(primary_key=True, sa_type=Text)
    base_url: str = Field(sa_type=Text)
    upstream_model: str = Field(sa_type=Text)
    api_key: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _now()
    context_window: int | None = None  # tokens; enables truncation checks for the alias
    cache_control: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    api: str = Field(default="chat", sa_type=Text, sa_column_kwargs={"server_default": text("'chat'")})


class Tool(SQLModel, table=True):
    __tablename__ = "tools"
    name: str = Field(primary_key=True, sa_type=Text)
    description: str = Field(default="", sa_type=Text, sa_column_kwargs={"server_default": text("''")})
    parameters: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    url: str = Field(sa_type=Text)
    timeout_seconds: float = Field(sa_type=Double)
    secret_header_name: str | None = Field(default=None, sa_type=Text)
    secret_header_value: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _now()


class McpServer(SQLModel, table=True):
    """A remote MCP server an admin registered under a label; requests name the label, never see the secrets."""

    __tablename__ = "mcp_servers"
    label: str = Field(primary_key=True, sa_type=Text)
    url: str = Field(sa_type=Text)
    headers: dict[str, str] = Field(sa_column=Column(JSONB, nullable=False))  # sent with every request (secrets)
    description: str = Field(default="", sa_type=Text, sa_column_kwargs={"server_default": text("''")})
    created_at: datetime = _now()


class Response(SQLModel, table=True):
    __tablename__ = "responses"
    __table_args__ = (
        CheckConstraint(_in("status", list(ResponseStatus)), name="responses_status_check"),
        # The sweep's scan of unfinished responses; listed in enum order so the predicate text is stable.
        Index("responses_open_idx", "updated_at",
              postgresql_where=text(_in("status", [s for s in ResponseStatus if s in OPEN_STATUSES]))),
    )
    id: str = Field(primary_key=True, sa_type=Text)
    owner_id: str = Field(sa_type=Text)
    status: str = Field(sa_type=Text)
    model: str = Field(sa_type=Text)
    request: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    previous_response_id: str | None = Field(default=None, sa_type=Text)
    idempotency_key: str | None = Field(default=None, sa_type=Text)
    request_hash: str = Field(sa_type=Text)
    created_at: datetime = _now()
    updated_at: datetime = _now()
    completed_at: datetime | None = _ts()
    error: dict[str, Any] | None = _json()
    incomplete_reason: str | None = Field(default=None, sa_type=Text)
    input_tokens: int = _zero()
    output_tokens: int = _zero()
    cached_tokens: int = _zero()
    reasoning_tokens: int = _zero()
    event_seq: int = _zero()
    cache_write_tokens: int = _zero()  # last: added by a later revision
    conversation_id: str | None = Field(default=None, sa_type=Text, index=True)  # no FK: it outlives a deletion


class Item(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint(_in("direction", ["input", "output"]), name="items_direction_check"),
        Index("items_id_idx", "id", "owner_id"),
    )
    response_id: str = Field(primary_key=True, foreign_key="responses.id", ondelete="CASCADE", sa_type=Text)
    direction: str = Field(primary_key=True, sa_type=Text)
    position: int = Field(primary_key=True, sa_type=BigInteger)
    id: str = Field(sa_type=Text)
    owner_id: str = Field(sa_type=Text)
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))


class Step(SQLModel, table=True):
    __tablename__ = "steps"
    __table_args__ = (
        CheckConstraint(_in("kind", ["model_call", "tool_call", "compaction", "list_tools"]), name="steps_kind_check"),
        CheckConstraint(_in("state", ["running", "completed", "failed", "cancelled"]), name="steps_state_check"),
    )
    response_id: str = Field(primary_key=True, foreign_key="responses.id", ondelete="CASCADE", sa_type=Text)
    seq: int = Field(primary_key=True)
    kind: str = Field(sa_type=Text)
    state: str = Field(sa_type=Text)
    attempt: int
    tool_name: str | None = Field(default=None, sa_type=Text)
    call_id: str | None = Field(default=None, sa_type=Text)
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    error: str | None = Field(default=None, sa_type=Text)
    result: dict[str, Any] | None = _json()


class ResponseEvent(SQLModel, table=True):
    __tablename__ = "response_events"
    __table_args__ = (Index("response_events_step_idx", "response_id", "step_seq"),)
    response_id: str = Field(primary_key=True, foreign_key="responses.id", ondelete="CASCADE", sa_type=Text)
    seq: int = Field(primary_key=True)
    step_seq: int | None = None
    type: str = Field(sa_type=Text)
    event: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = _now()



class Compaction(SQLModel, table=True):
    """A conversation window summarized by a model call; compaction items refer to it by id (owner-scoped)."""

    __tablename__ = "compactions"
    __table_args__ = (CheckConstraint(_in("status", ["running", "completed", "failed"]),
                                      name="compactions_status_check"),)
    id: str = Field(primary_key=True, sa_type=Text)
    owner_id: str = Field(sa_type=Text)
    model: str = Field(sa_type=Text)
    status: str = Field(sa_type=Text)
    instructions: str | None = Field(default=None, sa_type=Text)
    items: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))  # the window it replaces
    summary: str | None = Field(default=None, sa_type=Text)
    error: dict[str, Any] | None = _json()
    input_tokens: int = _zero()
    output_tokens: int = _zero()
    cached_tokens: int = _zero()
    reasoning_tokens: int = _zero()
    created_at: datetime = _now()
    completed_at: datetime | None = _ts()
    cache_write_tokens: int = _zero()  # last: added by a later revision


class Conversation(SQLModel, table=True):
    """A durable thread of items; responses created with it read it as context and append to it when they end."""

    __tablename__ = "conversations"
    id: str = Field(primary_key=True, sa_type=Text)
    owner_id: str = Field(sa_type=Text)
    metadata_: dict[str, Any] = Field(sa_column=Column("metadata", JSONB, nullable=False))
    created_at: datetime = _now()


class ConversationItem(SQLModel, table=True):
    """One item of a conversation, in order; an item id appears once per conversation."""

    __tablename__ = "conversation_items"
    __table_args__ = (UniqueConstraint("conversation_id", "id", name="conversation_items_id_key"),)
    conversation_id: str = Field(primary_key=True, foreign_key="conversations.id", ondelete="CASCADE", sa_type=Text)
    position: int = Field(primary_key=True, sa_type=BigInteger)
    id: str = Field(sa_type=Text)
    response_id: str | None = Field(default=None, sa_type=Text)  # the response that added it, if one did
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = _now()


class Grant(SQLModel, table=True):
    """An owner may use a model alias, a registered tool or a registered MCP server. One that has no grants at all is
    everyone's; one that has some is only theirs."""

    __tablename__ = "grants"
    __table_args__ = (CheckConstraint(_in("kind", list(GRANT_KINDS)), name="grants_kind_check"),)
    kind: str = Field(primary_key=True, sa_type=Text)
    name: str = Field(primary_key=True, sa_type=Text)
    owner_id: str = Field(primary_key=True, sa_type=Text)
    created_at: datetime = _now()
