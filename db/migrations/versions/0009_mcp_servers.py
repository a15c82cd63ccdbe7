"""Remote MCP servers registered by an admin under a label, and the step that lists a server's tools.

Revision ID: 0009_mcp_servers
Revises: 0008_conversations
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009_mcp_servers"
down_revision: str | Sequence[str] | None = "0008_conversations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("label", sa.Text(), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("headers", JSONB(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.drop_constraint("steps_kind_check", "steps", type_="check")
    op.create_check_constraint("steps_kind_check", "steps",
                               "kind IN ('model_call', 'tool_call', 'compaction', 'list_tools')")


def downgrade() -> None:
    op.drop_constraint("steps_kind_check", "steps", type_="check")
    op.create_check_constraint("steps_kind_check", "steps", "kind IN ('model_call', 'tool_call', 'compaction')")
    op.drop_table("mcp_servers")
