"""Identifiers: random ones for new objects, derived ones for idempotent requests."""

import hashlib
import secrets


def new_id(prefix: str) -> str:
    """A fresh random id such as `resp_3f…`."""
    return f"{prefix}_{secrets.token_hex(16)}"


def idempotent_response_id(owner_id: str, key: str) -> str:
    """The response id an Idempotency-Key maps to, stable for one owner."""
    digest = hashlib.sha256(f"{owner_id}\x00{key}".encode()).hexdigest()
    return f"resp_{digest[:32]}"


def hash_secret(secret: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def approved_call_id(response_id: str, approval_request_id: str) -> str:
    """The id of the `mcp_call` an approval runs in a response: derived, so a retried step finds its own item."""
    return "mcp_" + hashlib.sha256(f"{response_id}\x00{approval_request_id}".encode()).hexdigest()[:32]
