"""The typed errors the API maps to OpenAI's error envelope."""

from collections.abc import Mapping
from typing import Any, ClassVar

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_credits",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_disconnected",
}


def error_type_for(status: int) -> str:
    """The OpenAI error `type` conventionally paired with an HTTP status."""
    return _TYPE_BY_STATUS.get(status, "server_error")


class AgentRunnerError(Exception):
    """Base of every error the API turns into `{"error": {...}}`."""

    status: ClassVar[int] = 500

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    @property
    def http_status(self) -> int:
        """The HTTP status to answer with."""
        return self.status

    @property
    def error_type(self) -> str:
        """The envelope's `type`."""
        return error_type_for(self.http_status)

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the body."""
        return {}

    def envelope(self) -> dict[str, Any]:
        """The OpenAI-style body."""
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


class InvalidRequest(AgentRunnerError):
    status = 400


class InvalidCacheControl(InvalidRequest):
    """A `cache_control` breakpoint we refuse; `reason` labels the rejection counter."""

    def __init__(self, message: str, *, param: str, reason: str) -> None:
        super().__init__(message, param=param, code="invalid_cache_control")
        self.reason = reason


class Unauthorized(AgentRunnerError):
    status = 401


class Forbidden(AgentRunnerError):
    status = 403


class NotFound(AgentRunnerError):
    status = 404


class Conflict(AgentRunnerError):
    status = 409


class PayloadTooLarge(AgentRunnerError):
    status = 413


class ServiceUnavailable(AgentRunnerError):
    """A dependency (PostgreSQL, Temporal) is out of reach: nothing was accepted, and the client may retry."""

    status = 503

    def __init__(self, message: str, *, retry_after: int = 2, code: str | None = "service_unavailable") -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UpstreamError(AgentRunnerError):
    """An error reported by the upstream model, keeping its status, type and code."""

    def __init__(
        self, status: int, message: str, *, type_: str | None = None, param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self._status = status
        self._type = type_

    @classmethod
    def from_failure(cls, failure: Mapping[str, Any], default_message: str) -> "UpstreamError":
        """From a stored failure (an UpstreamFailure's fields): the status, message, type, param and code it had."""
        return cls(int(failure.get("status") or 500), failure.get("message") or default_message,
                   type_=failure.get("type"), param=failure.get("param"), code=failure.get("code"))

    @property
    def http_status(self) -> int:
        return self._status

    @property
    def error_type(self) -> str:
        return self._type or error_type_for(self._status)
