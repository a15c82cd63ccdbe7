"""A model alias's context window, in tokens (truncation: "disabled" overflow checks, "auto" trimming).

Revision ID: 0004_model_context_window
Revises: 0003_compaction_steps
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_model_context_window"
down_revision: str | Sequence[str] | None = "0003_compaction_steps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("models", sa.Column("context_window", sa.Integer()))


def downgrade() -> None:
    op.drop_column("models", "context_window")
