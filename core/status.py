"""The lifecycle of a response: one enum, with the open and terminal sets derived from it."""

from enum import StrEnum


class ResponseStatus(StrEnum):
    """A response's `status`, as the Responses API names it."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INCOMPLETE = "incomplete"

    @property
    def terminal(self) -> bool:
        """Whether nothing moves the response any more."""
        return self in TERMINAL_STATUSES


OPEN_STATUSES = frozenset({ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS})
TERMINAL_STATUSES = frozenset(ResponseStatus) - OPEN_STATUSES
