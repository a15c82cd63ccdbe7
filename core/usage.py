"""Token usage: one shape for a model call, a step and a whole response."""

from typing import Any

from pydantic import BaseModel, ConfigDict


class Usage(BaseModel):
    """Token counts; a response's usage is the sum over its model calls."""

    model_config = ConfigDict(from_attributes=True)  # read straight off a stored response row

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in Usage.model_fields})

    @classmethod
    def from_chat(cls, usage: dict[str, Any] | None) -> "Usage":
        """From a chat completion's `usage` (absent fields count as 0).

        Cache writes are `prompt_tokens_details.cache_write_tokens`, or `cache_creation_input_tokens` as
        Anthropic-compatible gateways (LiteLLM) report them.
        """
        usage = usage or {}
        prompt = usage.get("prompt_tokens_details") or {}
        written = prompt.get("cache_write_tokens") or usage.get("cache_creation_input_tokens")
        return cls(input_tokens=int(usage.get("prompt_tokens") or 0),
                   output_tokens=int(usage.get("completion_tokens") or 0),
                   cached_tokens=int(prompt.get("cached_tokens") or 0), cache_write_tokens=int(written or 0),
                   reasoning_tokens=int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0))

    @classmethod
    def from_responses(cls, usage: dict[str, Any] | None) -> "Usage":
        """From a Responses upstream's `usage` (the shape `to_wire` gives; absent fields count as 0)."""
        usage = usage or {}
        given = usage.get("input_tokens_details") or {}
        return cls(input_tokens=int(usage.get("input_tokens") or 0),
                   output_tokens=int(usage.get("output_tokens") or 0),
                   cached_tokens=int(given.get("cached_tokens") or 0),
                   cache_write_tokens=int(given.get("cache_write_tokens") or 0),
                   reasoning_tokens=int((usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0))

    def to_wire(self) -> dict[str, Any]:
        """The Responses API `usage` object."""
        return {"input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": self.cached_tokens,
                                         "cache_write_tokens": self.cache_write_tokens},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
                "total_tokens": self.input_tokens + self.output_tokens}
