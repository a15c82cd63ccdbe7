"""Compactions: conversation windows summarized by a model call, referred to by compaction items.

Revision ID: 0002_compactions
Revises: 0001_initial
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002_compactions"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    zero = sa.text("0")
    op.create_table(
        "compactions",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("instructions", sa.Text()),
        sa.Column("items", JSONB(), nullable=False),
        sa.Column("summary", sa.Text()),
        sa.Column("error", JSONB()),
        sa.Column("input_tokens", sa.Integer(), nullable=False, server_default=zero),
        sa.Column("output_tokens", sa.Integer(), nullable=False, server_default=zero),
        sa.Column("cached_tokens", sa.Integer(), nullable=False, server_default=zero),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False, server_default=zero),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('running', 'completed', 'failed')", name="compactions_status_check"),
    )


def downgrade() -> None:
    op.drop_table("compactions")
