"""Service tiers: what a request asks for, what it runs at, and the Temporal task priority of each."""

from typing import Literal

RequestedTier = Literal["auto", "default", "flex", "priority", "scale"]

# Temporal priority keys: lower runs sooner; 3 is Temporal's default.
PRIORITY_BY_TIER = {"priority": 1, "scale": 2, "default": 3, "flex": 5}


def effective_tier(requested: str | None) -> str:
    """The tier a request runs at and is echoed with (`auto` and unset mean `default`)."""
    return "default" if requested in (None, "auto") else requested
