"""The model-call activity: load the context, call the model (streaming when asked), store what it said."""

import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.lifecycle import move_status
from activities.message_stream import MessageStream
from activities.upstream import complete, model_unavailable, stream_chat_completion, upstream_error
from core.context_window import fit_messages
from core.contracts import ModelCallInput, ModelTurn, ToolCallRef, UpstreamFailure
from core.convert import (
    completion_to_items,
    items_to_messages,
    reasoning_of,
    response_format_to_chat,
    tool_choice_to_chat,
    tools_to_chat,
)
from core.metrics import Metrics
from core.model_target import ModelTarget
from core.settings import Settings
from core.status import ResponseStatus
from core.stream_events import PriorStep, call_events
from core.usage import Usage
from db import responses as db
from db.catalog import resolve_model
from db.compactions import completed_summaries
from db.events import step_events

LOGPROBS = "message.output_text.logprobs"  # the `include` value that asks for them


def build_payload(request: dict[str, Any], target: ModelTarget, messages: list[dict[str, Any]],
                  turn: int) -> dict[str, Any]:
    """The chat-completions request for this turn."""
    payload: dict[str, Any] = {"model": target.upstream_model, "messages": messages}
    if request.get("_model_tools"):
        payload["tools"] = tools_to_chat(request["_model_tools"])
        choice = request.get("tool_choice", "auto")
        # A forced choice applies to the first turn only; forcing it again would loop forever.
        if turn > 1 and choice != "none":
            choice = "auto"
        payload["tool_choice"] = tool_choice_to_chat(choice)
        payload["parallel_tool_calls"] = request.get("parallel_tool_calls", True)
    for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"),
                         ("top_p", "top_p"), ("user", "user"), ("safety_identifier", "safety_identifier"),
                         ("prompt_cache_key", "prompt_cache_key"),
                         ("prompt_cache_retention", "prompt_cache_retention")):
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


def fit_window(request: dict[str, Any], window: int, messages: list[dict[str, Any]],
               tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The messages within the alias's context window: trimmed oldest first (`truncation: "auto"`), or a final
    400 naming `input` (`disabled`, the default) when they do not fit."""
    messages, refused = fit_messages(messages, window=window, tools=tools, auto=request.get("truncation") == "auto",
                                     max_output_tokens=request.get("max_output_tokens"))
    if refused:
        raise upstream_error(UpstreamFailure(status=400, message=refused, param="input", type="invalid_request_error",
                                             code="context_length_exceeded"), retryable=False)
    return messages


def merge_tool_call_delta(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """Fold one streamed tool_calls fragment into the calls being assembled, by index."""
    call = calls.setdefault(delta.get("index", len(calls)),
                            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if delta.get("id"):
        call["id"] = delta["id"]
    fn = delta.get("function") or {}
    call["function"]["name"] += fn.get("name") or ""
    call["function"]["arguments"] += fn.get("arguments") or ""


@dataclass
class ModelCallActivity:
    """Holds the clients the model call needs."""

    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    settings: Settings
    metrics: Metrics

    @activity.defn(name="call_model")
    async def call_model(self, inp: ModelCallInput) -> ModelTurn:
        """Call the model for one turn; a retry after the step completed returns the stored turn."""
        async with self.sessions() as s:
            # Committed together with the step's start below: no transaction of its own.
            moved = (await move_status(s, inp.response_id, ResponseStatus.IN_PROGRESS,
                                       only_from=(ResponseStatus.QUEUED,), commit=False)
                     if inp.start_response else None)
            done = await db.completed_step_result(s, inp.response_id, inp.seq)
            if done is not None:
                return ModelTurn.model_validate(done)
            response = moved or await db.get_response(s, inp.response_id)
            if response is None:
                raise ApplicationError("response was deleted", type="ResponseGone", non_retryable=True)
            await db.start_step(s, inp.response_id, inp.seq, "model_call", activity.info().attempt)
            target = await resolve_model(s, self.settings, response.model)
            context = await db.context_items(s, inp.response_id)
            summaries = await completed_summaries(s, response.owner_id, context)
            # Only a streamed step has events an earlier attempt may have shown.
            streamed = bool(response.request.get("stream"))
            prior = PriorStep.from_events(await step_events(s, inp.response_id, inp.seq) if streamed else [])
        if target is None:
            raise model_unavailable(response.model)
        request = response.request
        messages = items_to_messages(request.get("instructions"), context, summaries,
                                     cache_control=target.cache_control)
        payload = build_payload(request, target, messages, inp.turn)
        if target.context_window:
            payload["messages"] = fit_window(request, target.context_window, messages, payload.get("tools"))
        summary_mode = (request.get("reasoning") or {}).get("summary")
        stream = None
        if request.get("stream"):
            stream = MessageStream(self.sessions, inp.response_id, inp.seq, inp.output_index, prior,
                                   self.settings.stream_coalesce_ms / 1000, summary_mode=summary_mode)
        started = time.monotonic()
        try:
            completion = await heartbeating(self._complete(target, payload, stream))
        except ApplicationError as exc:
            status = exc.details[0].get("status", 0) if exc.details and isinstance(exc.details[0], dict) else 0
            self.metrics.model_call_errors.labels(response.model, str(status)).inc()
            activity.logger.warning("model call failed: %s", exc)
            async with self.sessions() as s:
                await db.fail_step(s, inp.response_id, inp.seq, str(exc))
            raise
        finally:
            self.metrics.model_call_seconds.labels(response.model).observe(time.monotonic() - started)
        choice = completion["choices"][0]
        items = completion_to_items(choice.get("message") or {}, set(request.get("_server_tools", [])),
                                    summary_mode=summary_mode, logprobs=(choice.get("logprobs") or {}).get("content"))
        calls = [i for i in items if i["type"] in ("function_call", "mcp_call")]
        events: list[dict[str, Any]] = []
        partials, first_call_index = 0, inp.output_index + len(items) - len(calls)
        if stream is not None:
            message_items, events, first_call_index = await stream.finish(choice["message"].get("content") or "")
            items = message_items + calls
            events += [e for j, c in enumerate(calls) for e in call_events(first_call_index + j, c)]
            partials = stream.stored_partials
        usage = Usage.from_chat(completion.get("usage"))
        self.metrics.tokens.labels(response.model, "input").inc(usage.input_tokens)
        self.metrics.tokens.labels(response.model, "output").inc(usage.output_tokens)
        turn = ModelTurn(
            seq=inp.seq,
            tool_calls=[ToolCallRef(call_id=c["id"] if c["type"] == "mcp_call" else c["call_id"], name=c["name"],
                                    server_side=c["type"] == "mcp_call", output_index=first_call_index + j)
                        for j, c in enumerate(calls)],
            finish_reason=choice.get("finish_reason"),
            output_items=partials + len(items),
            usage=usage,
        )
        async with self.sessions() as s:
            await db.complete_step(s, inp.response_id, inp.seq, items=items, result=turn.model_dump(), usage=usage,
                                   first_index=partials, events=events)
        return turn

    async def _complete(self, target: ModelTarget, payload: dict[str, Any],
                        stream: MessageStream | None) -> dict[str, Any]:
        """A chat completion; with a MessageStream its text is streamed to the event log as it arrives."""
        timeout = self.settings.upstream_timeout_seconds
        if target.base_url is None or stream is None:
            completion = await complete(self.http, target, payload, timeout)
            if stream is not None:  # the scripted model streams its answer word by word
                async with stream:
                    for word in re.findall(r"\S+\s*|\s+", completion["choices"][0]["message"].get("content") or ""):
                        await stream.text(word)
            return completion
        content, finish, usage = "", None, None
        calls: dict[int, dict[str, Any]] = {}
        async with stream:
            async for chunk in stream_chat_completion(self.http, target, payload, timeout):
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    stream.think(reasoning_of(delta))
                    if delta.get("tool_calls"):
                        await stream.show_reasoning()  # before the calls, which come at the end
                    if delta.get("content"):
                        content += delta["content"]
                        await stream.text(delta["content"])
                    for call_delta in delta.get("tool_calls") or []:
                        merge_tool_call_delta(calls, call_delta)
                    finish = choice.get("finish_reason") or finish
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        return {"choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}
