"""Whether a model alias's upstream takes cache_control breakpoints on content parts (else they are stripped).

Revision ID: 0006_model_cache_control
Revises: 0005_cache_write_tokens
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_model_cache_control"
down_revision: str | Sequence[str] | None = "0005_cache_write_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("models", sa.Column("cache_control", sa.Boolean(), nullable=False, server_default=sa.text("false")))


def downgrade() -> None:
    op.drop_column("models", "cache_control")
