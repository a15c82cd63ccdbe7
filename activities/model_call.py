"""The model-call activity: load the context, call the model, store what it said."""

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.upstream import chat_completion, upstream_error
from core.contracts import ModelCallInput, ModelTurn, ToolCallRef, UpstreamFailure
from core.convert import completion_to_items, items_to_messages, tool_choice_to_chat, tools_to_chat
from core.ids import new_id
from core.scripted import scripted_completion
from core.settings import Settings
from db import responses as db
from db.catalog import ModelTarget, resolve_model


def build_payload(request: dict[str, Any], target: ModelTarget, messages: list[dict[str, Any]],
                  turn: int) -> dict[str, Any]:
    """The chat-completions request for this turn."""
    payload: dict[str, Any] = {"model": target.upstream_model, "messages": messages}
    if request.get("tools"):
        payload["tools"] = tools_to_chat(request["tools"])
        choice = request.get("tool_choice", "auto")
        # A forced choice applies to the first turn only; forcing it again would loop forever.
        if turn > 1 and choice != "none":
            choice = "auto"
        payload["tool_choice"] = tool_choice_to_chat(choice)
        payload["parallel_tool_calls"] = request.get("parallel_tool_calls", True)
    for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"),
                         ("top_p", "top_p"), ("user", "user")):
        if request.get(ours) is not None:
            payload[theirs] = request[ours]
    return payload


def _usage(completion: dict[str, Any]) -> dict[str, int]:
    usage = completion.get("usage") or {}
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cached_tokens": int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
        "reasoning_tokens": int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0),
    }


@dataclass
class ModelCallActivity:
    """Holds the clients the model call needs."""

    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    settings: Settings

    @activity.defn(name="call_model")
    async def call_model(self, inp: ModelCallInput) -> ModelTurn:
        """Call the model for one turn; a retry after the step completed returns the stored turn."""
        async with self.sessions() as s:
            done = await db.completed_step_result(s, inp.response_id, inp.seq)
            if done is not None:
                return ModelTurn.model_validate(done)
            response = await db.get_response(s, inp.response_id)
            if response is None:
                raise ApplicationError("response was deleted", type="ResponseGone", non_retryable=True)
            await db.start_step(s, inp.response_id, inp.seq, "model_call", activity.info().attempt)
            target = await resolve_model(s, self.settings, response.model)
            context = await db.context_items(s, inp.response_id)
        if target is None:
            raise upstream_error(UpstreamFailure(status=400, message=f"model {response.model!r} is not available",
                                                 code="model_not_found"), retryable=False)
        request = response.request
        messages = items_to_messages(request.get("instructions"), context)
        payload = build_payload(request, target, messages, inp.turn)
        try:
            if target.base_url is None:
                offered = payload.get("tools", []) if payload.get("tool_choice") != "none" else []
                completion = scripted_completion(messages, offered, new_id("call"))
            else:
                completion = await heartbeating(
                    chat_completion(self.http, target, payload, self.settings.upstream_timeout_seconds))
        except ApplicationError as exc:
            async with self.sessions() as s:
                await db.fail_step(s, inp.response_id, inp.seq, str(exc))
            raise
        choice = completion["choices"][0]
        items = completion_to_items(choice.get("message") or {})
        server_tools = set(request.get("_server_tools", []))
        usage = _usage(completion)
        turn = ModelTurn(
            seq=inp.seq,
            tool_calls=[ToolCallRef(call_id=i["call_id"], name=i["name"], server_side=i["name"] in server_tools)
                        for i in items if i["type"] == "function_call"],
            finish_reason=choice.get("finish_reason"),
            **usage,
        )
        async with self.sessions() as s:
            await db.complete_step(s, inp.response_id, inp.seq, items=items, result=turn.model_dump(), usage=usage)
        return turn
