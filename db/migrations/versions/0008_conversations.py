"""Conversations: a thread of items per owner, and the conversation a response reads and appends to.

Revision ID: 0008_conversations
Revises: 0007_model_api
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008_conversations"
down_revision: str | Sequence[str] | None = "0007_model_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("metadata", JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "conversation_items",
        sa.Column("conversation_id", sa.Text(), sa.ForeignKey("conversations.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.BigInteger(), primary_key=True),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("response_id", sa.Text(), nullable=True),
        sa.Column("data", JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("conversation_id", "id", name="conversation_items_id_key"),
    )
    op.add_column("responses", sa.Column("conversation_id", sa.Text(), nullable=True))
    op.create_index("ix_responses_conversation_id", "responses", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_responses_conversation_id", "responses")
    op.drop_column("responses", "conversation_id")
    op.drop_table("conversation_items")
    op.drop_table("conversations")
