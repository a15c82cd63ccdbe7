"""Cache-write input tokens, summed per response and per compaction like the other usage counts.

Revision ID: 0005_cache_write_tokens
Revises: 0004_model_context_window
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_cache_write_tokens"
down_revision: str | Sequence[str] | None = "0004_model_context_window"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("responses", "compactions")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("cache_write_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "cache_write_tokens")
