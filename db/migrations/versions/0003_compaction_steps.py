"""Compaction steps: a response's loop may summarize its context (context_management) as a step of its own.

Revision ID: 0003_compaction_steps
Revises: 0002_compactions
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_compaction_steps"
down_revision: str | Sequence[str] | None = "0002_compactions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("steps_kind_check", "steps", type_="check")
    op.create_check_constraint("steps_kind_check", "steps", "kind IN ('model_call', 'tool_call', 'compaction')")


def downgrade() -> None:
    op.drop_constraint("steps_kind_check", "steps", type_="check")
    op.create_check_constraint("steps_kind_check", "steps", "kind IN ('model_call', 'tool_call')")
