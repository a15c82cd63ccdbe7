"""Grants of models, tools and MCP servers to owners; steps a cancel stopped are `cancelled`.

Revision ID: 0010_grants_and_cancelled_steps
Revises: 0009_mcp_servers
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_grants_and_cancelled_steps"
down_revision: str | Sequence[str] | None = "0009_mcp_servers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("kind", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("owner_id", sa.Text(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('model', 'tool', 'mcp_server')", name="grants_kind_check"),
    )
    op.drop_constraint("steps_state_check", "steps", type_="check")
    op.create_check_constraint("steps_state_check", "steps", "state IN ('running', 'completed', 'failed', 'cancelled')")


def downgrade() -> None:
    op.execute("UPDATE steps SET state = 'failed' WHERE state = 'cancelled'")
    op.drop_constraint("steps_state_check", "steps", type_="check")
    op.create_check_constraint("steps_state_check", "steps", "state IN ('running', 'completed', 'failed')")
    op.drop_table("grants")
