"""Fitting a conversation into a model's context window (`truncation`), by an estimate of its tokens.

No tokenizer here (they download their vocabularies): about four characters of the JSON the upstream receives
make one token, which errs on the large side for English text and code.
"""

import json
from typing import Any

CHARS_PER_TOKEN = 4


def estimate_tokens(value: Any) -> int:
    """Roughly how many tokens `value` (messages, tools) costs an upstream."""
    return -(-len(json.dumps(value, separators=(",", ":"))) // CHARS_PER_TOKEN)


def truncate_oldest(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """`truncation: "auto"`: drop the oldest conversation messages until the rest fits `budget` tokens.

    Leading system messages (instructions, compaction summaries) stay, and so does the newest message; a dropped
    assistant turn takes its tool results with it, since an upstream rejects a tool result without its call.
    """
    head = 0
    while head < len(messages) and messages[head]["role"] == "system":
        head += 1
    system, rest = messages[:head], messages[head:]
    while len(rest) > 1 and estimate_tokens(system + rest) > budget:
        rest = rest[1:]
        while len(rest) > 1 and rest[0]["role"] == "tool":
            rest = rest[1:]
    return system + rest


def fit_messages(messages: list[dict[str, Any]], *, window: int, tools: list[dict[str, Any]] | None,
                 max_output_tokens: int | None, auto: bool) -> tuple[list[dict[str, Any]], str | None]:
    """The messages for a model call within `window` tokens, less the tools offered and the room kept for the
    answer: trimmed oldest first when `auto`; with the reason they are refused when they still do not fit."""
    budget = window - (estimate_tokens(tools) if tools else 0) - (max_output_tokens or 0)
    if auto:
        messages = truncate_oldest(messages, budget)
    estimate = estimate_tokens(messages)
    if estimate <= budget:
        return messages, None
    return messages, (f"The input is about {estimate} tokens, over the {budget} this model's context window leaves "
                      "for it; shorten it, or set truncation to 'auto' to drop the oldest items.")
