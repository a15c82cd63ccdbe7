"""What a model alias's upstream speaks: chat completions, or the Responses API itself.

Revision ID: 0007_model_api
Revises: 0006_model_cache_control
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_model_api"
down_revision: str | Sequence[str] | None = "0006_model_cache_control"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("models", sa.Column("api", sa.Text(), nullable=False, server_default=sa.text("'chat'")))
    op.create_check_constraint("models_api_check", "models", "api IN ('chat', 'responses')")


def downgrade() -> None:
    op.drop_constraint("models_api_check", "models", type_="check")
    op.drop_column("models", "api")
