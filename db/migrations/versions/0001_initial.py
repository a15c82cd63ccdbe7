"""Baseline: the schema the SQL runner built with 0001_initial.sql and 0002_response_events.sql.

Revision ID: 0001_initial
Revises:

A database made by that runner is stamped at this revision instead of running it (see db.migrate). So this
creates exactly that schema, column order and constraint names included, and stays frozen: later changes go in
new revisions, with values written out here rather than imported from the application.
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def _timestamp(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=NOW if now else None)


def _owned_by_response(table: str) -> sa.Column[str]:
    """The response_id column of a table whose rows go when their response does."""
    return sa.Column("response_id", sa.Text(), sa.ForeignKey("responses.id", ondelete="CASCADE",
                     name=f"{table}_response_id_fkey"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("revoked_at"),
        sa.UniqueConstraint("key_hash", name="api_keys_key_hash_key"),
    )
    op.create_table(
        "models",
        sa.Column("alias", sa.Text(), primary_key=True),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("upstream_model", sa.Text(), nullable=False),
        sa.Column("api_key", sa.Text()),
        _timestamp("created_at", nullable=False, now=True),
    )
    op.create_table(
        "tools",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("parameters", JSONB(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("timeout_seconds", sa.Double(), nullable=False),
        sa.Column("secret_header_name", sa.Text()),
        sa.Column("secret_header_value", sa.Text()),
        _timestamp("created_at", nullable=False, now=True),
    )
    op.create_table(
        "responses",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("request", JSONB(), nullable=False),
        sa.Column("previous_response_id", sa.Text()),
        sa.Column("idempotency_key", sa.Text()),
        sa.Column("request_hash", sa.Text(), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
        _timestamp("updated_at", nullable=False, now=True),
        _timestamp("completed_at"),
        sa.Column("error", JSONB()),
        sa.Column("incomplete_reason", sa.Text()),
        sa.Column("input_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("output_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("cached_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")),
        # Added last by 0002_response_events.sql; kept last so both paths give the same column order.
        sa.Column("event_seq", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.CheckConstraint(
            "status IN ('queued','in_progress','completed','failed','cancelled','incomplete')",
            name="responses_status_check"),
    )
    op.create_index("responses_open_idx", "responses", ["updated_at"],
                    postgresql_where=sa.text("status IN ('queued', 'in_progress')"))

    # Item ids are not unique: clients re-send earlier items (with their ids) as new input.
    op.create_table(
        "items",
        _owned_by_response("items"),
        sa.Column("direction", sa.Text(), primary_key=True),
        sa.Column("position", sa.BigInteger(), primary_key=True),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("data", JSONB(), nullable=False),
        sa.CheckConstraint("direction IN ('input', 'output')", name="items_direction_check"),
    )
    op.create_index("items_id_idx", "items", ["id", "owner_id"])

    op.create_table(
        "steps",
        _owned_by_response("steps"),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("tool_name", sa.Text()),
        sa.Column("call_id", sa.Text()),
        _timestamp("started_at"),
        _timestamp("finished_at"),
        sa.Column("error", sa.Text()),
        sa.Column("result", JSONB()),
        sa.CheckConstraint("kind IN ('model_call', 'tool_call')", name="steps_kind_check"),
        sa.CheckConstraint("state IN ('running', 'completed', 'failed')", name="steps_state_check"),
    )

    # Durable stream event log: one row per SSE event, numbered per response from 0.
    op.create_table(
        "response_events",
        _owned_by_response("response_events"),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("step_seq", sa.Integer()),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("event", JSONB(), nullable=False),
        _timestamp("created_at", nullable=False, now=True),
    )
    op.create_index("response_events_step_idx", "response_events", ["response_id", "step_seq"])


def downgrade() -> None:
    for table in ("response_events", "steps", "items", "responses", "tools", "models", "api_keys"):
        op.drop_table(table)
