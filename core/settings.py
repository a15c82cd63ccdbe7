"""All configuration, read from the environment (and `.env`) in one place."""

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.contracts import StepPolicy
from core.fetch_policy import FetchPolicy


def _env(name: str) -> AliasChoices:
    """Accept both the field's AGENTRUNNER_ name and a conventional unprefixed one."""
    return AliasChoices(name, f"AGENTRUNNER_{name}")


class Settings(BaseSettings):
    """Settings shared by the API, the workers and the CLI."""

    model_config = SettingsConfigDict(
        env_prefix="AGENTRUNNER_", env_file=".env", extra="ignore", populate_by_name=True,
        env_nested_delimiter="__"
    )

    state_dir: Path = Field(Path(".agentrunner"), description="Where embedded PostgreSQL and Temporal keep data")
    database_url: str | None = Field(
        None, validation_alias=_env("DATABASE_URL"), description="PostgreSQL URL; unset = embedded PostgreSQL"
    )
    temporal_address: str = Field("127.0.0.1:7233", validation_alias=_env("TEMPORAL_ADDRESS"))
    temporal_namespace: str = Field("default", validation_alias=_env("TEMPORAL_NAMESPACE"))
    temporal_ui_port: int = 8233
    task_queue: str = "agentrunner"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    admin_token: str | None = None
    # The Temporal UI's remote codec (api/routes/codec.py): loopback callers without a token (`dev` turns it on),
    # and the UI origins its CORS answers.
    codec_allow_loopback: bool = False
    codec_cors_origins: list[str] = ["http://127.0.0.1:8233", "http://localhost:8233"]
    max_body_bytes: int = 4 * 1024 * 1024

    upstream_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "AGENTRUNNER_UPSTREAM_BASE_URL"),
        description="Default OpenAI-compatible upstream for models not registered by alias",
    )
    upstream_api_key: str | None = Field(
        None, validation_alias=AliasChoices("OPENAI_API_KEY", "AGENTRUNNER_UPSTREAM_API_KEY")
    )
    upstream_timeout_seconds: float = 600.0
    scripted_model: str = "agentrunner-scripted"

    steps: StepPolicy = StepPolicy()
    fetch: FetchPolicy = FetchPolicy()  # where requests may make the server fetch (MCP servers, HTTP tools)
    mcp_timeout_seconds: float = 60.0  # one MCP request (a listing, a tool call)
    response_timeout_seconds: float = 3600.0
    cancel_wait_seconds: float = 10.0
    worker_shutdown_grace_seconds: float = 30.0
    worker_sticky_timeout_seconds: float = 10.0
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 0
    log_format: Literal["text", "json"] = "text"
    stream_coalesce_ms: float = 0.0
    sse_keepalive_seconds: float = 15.0
    # How long a process keeps a catalog lookup (key, model, tool) at most; any change forgets them at once. 0: off.
    catalog_cache_seconds: float = 60.0
    cache_control_ttls: list[Literal["5m", "1h", "24h"]] = ["5m", "1h"]
    event_retention_seconds: float = 7 * 24 * 3600.0
    reconcile_interval_seconds: float = 30.0
    reconcile_min_age_seconds: float = 60.0
