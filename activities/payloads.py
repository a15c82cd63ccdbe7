"""What an upstream is sent for one model step: a chat completion request, or a stateless Responses request."""

from typing import Any

from core.convert import response_format_to_chat, tool_choice_to_chat, tools_to_chat
from core.model_target import ModelTarget
from core.responses_items import ENCRYPTED_REASONING, context_to_input

LOGPROBS = "message.output_text.logprobs"  # the `include` value that asks for them


# Request fields an upstream gets as they are, whichever API it speaks.
FORWARDED = ("temperature", "top_p", "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention")


def turn_tool_choice(request: dict[str, Any], turn: int) -> Any:
    """The request's tool_choice for this turn: a forced choice applies to the first turn only (forcing it again
    would loop forever)."""
    choice = request.get("tool_choice", "auto")
    return "auto" if turn > 1 and choice != "none" else choice


def build_responses_payload(request: dict[str, Any], target: ModelTarget, context: list[dict[str, Any]],
                            summaries: dict[str, str], turn: int) -> dict[str, Any]:
    """The request to a native Responses upstream for this turn: stateless (`store: false`, the whole context as
    input) and with reasoning made portable, so its items can come back to it in the next turn."""
    payload: dict[str, Any] = {
        "model": target.upstream_model, "store": False,
        "input": context_to_input(context, summaries, cache_control=target.cache_control),
        "include": sorted({*(request.get("include") or []), ENCRYPTED_REASONING}),
    }
    if request.get("_model_tools"):
        payload["tools"] = request["_model_tools"]
        payload["tool_choice"] = turn_tool_choice(request, turn)
        payload["parallel_tool_calls"] = request.get("parallel_tool_calls", True)
    for key in ("instructions", "max_output_tokens", "text", "reasoning", "truncation", "top_logprobs", *FORWARDED):
        if request.get(key) is not None:
            payload[key] = request[key]
    return payload


def build_payload(request: dict[str, Any], target: ModelTarget, messages: list[dict[str, Any]],
                  turn: int) -> dict[str, Any]:
    """The chat-completions request for this turn."""
    payload: dict[str, Any] = {"model": target.upstream_model, "messages": messages}
    if request.get("_model_tools"):
        payload["tools"] = tools_to_chat(request["_model_tools"])
        payload["tool_choice"] = tool_choice_to_chat(turn_tool_choice(request, turn))
        payload["parallel_tool_calls"] = request.get("parallel_tool_calls", True)
    for ours, theirs in (("max_output_tokens", "max_tokens"), *((k, k) for k in FORWARDED)):
        if request.get(ours) is not None:
            payload[theirs] = request[ours]
    response_format = response_format_to_chat(request.get("text"))
    if response_format is not None:
        payload["response_format"] = response_format
    if (request.get("text") or {}).get("verbosity"):
        payload["verbosity"] = request["text"]["verbosity"]
    if LOGPROBS in (request.get("include") or []):
        payload["logprobs"] = True
        payload["top_logprobs"] = request.get("top_logprobs") or 0
    if (request.get("reasoning") or {}).get("effort"):
        payload["reasoning_effort"] = request["reasoning"]["effort"]
    return payload
