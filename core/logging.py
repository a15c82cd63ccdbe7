"""Log setup: plain text for people, or one JSON object per line carrying the response id."""

import json
import logging
from typing import Any

# Extras the Temporal SDK attaches to activity.logger / workflow.logger records.
_TEMPORAL_EXTRAS = ("temporal_activity", "temporal_workflow")


def response_id_of(record: logging.LogRecord) -> str | None:
    """The response a record is about: an explicit `response_id` extra, or the Temporal workflow id."""
    explicit = getattr(record, "response_id", None)
    if explicit:
        return str(explicit)
    for extra in _TEMPORAL_EXTRAS:
        info: Any = getattr(record, extra, None)
        if isinstance(info, dict) and str(info.get("workflow_id", "")).startswith("resp_"):
            return str(info["workflow_id"])
    return None


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "response_id"?, "exc"?}`."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        out: dict[str, Any] = {"ts": self.formatTime(record), "level": record.levelname, "logger": record.name,
                               "message": record.getMessage()}
        response_id = response_id_of(record)
        if response_id:
            out["response_id"] = response_id
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(fmt: str) -> None:
    """Install the root handler (`text` or `json`)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
