"""The model-call activity: load the context, call the model (streaming when asked), store what it said."""

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.catalog_cache import CatalogCache
from activities.heartbeat import StepGuard, lost_attempts, open_step
from activities.lifecycle import move_status, observe_end
from activities.message_stream import MessageStream
from activities.payloads import build_payload, build_responses_payload
from activities.upstream import (
    TERMINAL_UPSTREAM_EVENTS,
    complete,
    create_response,
    model_unavailable,
    stream_chat_completion,
    stream_response,
    upstream_error,
)
from core.context_window import fit_messages
from core.contracts import ModelCallInput, ModelTurn, ToolCallRef, UpstreamFailure
from core.convert import (
    completion_to_items,
    items_to_messages,
    reasoning_of,
    unique_ids,
)
from core.emit import output_item
from core.mcp import with_remote_tools
from core.metrics import Metrics
from core.model_target import ModelTarget
from core.responses_items import finish_reason, is_pending_call, output_to_items
from core.settings import Settings
from core.status import OPEN_STATUSES, ResponseStatus
from core.stream_events import PriorStep, call_events, item_events
from core.usage import Usage
from db import responses as db
from db.catalog import resolve_model
from db.compactions import completed_summaries
from db.events import step_events

# The tools the server runs (their server label by name) and those whose calls wait for approval.
Runs = tuple[dict[str, str], frozenset[str]]


def _items_of(result: dict[str, Any], runs: Runs) -> list[dict[str, Any]]:
    """A Responses upstream's output as our items; an item the spec has no type for fails the step for good."""
    try:
        items = output_to_items(result["output"], *runs)
        for item in items:
            output_item(item)  # checked only: the item itself passes through unchanged
    except ValueError as exc:  # a pydantic ValidationError is one
        raise upstream_error(UpstreamFailure(status=502, message=f"upstream output item does not fit the Responses "
                                                                 f"spec: {str(exc)[:500]}"), retryable=False) from exc
    return items


@dataclass
class StepOutput:
    """What one model call produced: the step's final items, their stream events, how it ended, its usage."""

    items: list[dict[str, Any]]
    events: list[dict[str, Any]]
    finish_reason: str | None
    usage: Usage


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
    guard: StepGuard  # hears of the response's end while a step runs
    catalog: CatalogCache

    @activity.defn(name="call_model")
    async def call_model(self, inp: ModelCallInput) -> ModelTurn:
        """Call the model for one turn; a retry after the step completed returns the stored turn."""
        self.guard.refuse_once_spent(inp.budget, "the model call")
        async with self.sessions() as s:  # one transaction: the move to in_progress, the step's start, the reads
            response, done = await open_step(s, inp.response_id, inp.seq, start_response=inp.start_response)
            if response is None:  # a replay after the response ended
                return ModelTurn.model_validate({**(done or {}), "response_id": inp.response_id, "replayed": True})
            start = await db.begin_step(s, inp.response_id, inp.seq, "model_call")
            if start.result is not None:
                return ModelTurn.model_validate({**start.result, "response_id": inp.response_id, "replayed": True})
            if (lost := lost_attempts(start.attempt, inp.attempts_known)) is not None:
                await s.rollback()  # nothing of this attempt is kept: it runs again once the workflow task completed
                return ModelTurn(seq=inp.seq, response_id=inp.response_id, deferred=lost)
            target = await self.catalog.get(("model", response.model, None),
                                            lambda: resolve_model(s, self.settings, response.model))
            context = await db.context_items(s, inp.response_id)
            summaries = await completed_summaries(s, response.owner_id, context)
            # Only a streamed step has events an earlier attempt may have shown.
            streamed = bool(response.request.get("stream"))
            prior = PriorStep.from_events(await step_events(s, inp.response_id, inp.seq) if streamed else [])
            await s.commit()
        if target is None:
            raise model_unavailable(response.model)
        request, server_tools, ask = with_remote_tools(response.request, context)
        summary_mode = (request.get("reasoning") or {}).get("summary")
        stream = None
        if request.get("stream"):
            stream = MessageStream(self.sessions, inp.response_id, inp.seq, inp.output_index, prior,
                                   self.settings.stream_coalesce_ms / 1000, summary_mode=summary_mode)
        started = time.monotonic()
        try:
            if target.api == "responses":
                payload = build_responses_payload(request, target, context, summaries, inp.turn)
                step = await self.guard.run(inp.response_id,
                                            self._respond(target, payload, (server_tools, ask), context, stream))
            else:
                payload = build_payload(request, target, items_to_messages(
                    request.get("instructions"), context, summaries, cache_control=target.cache_control), inp.turn)
                if target.context_window:
                    payload["messages"] = fit_window(request, target.context_window, payload["messages"],
                                                     payload.get("tools"))
                step = await self.guard.run(
                    inp.response_id, self._chat(target, payload, request, (server_tools, ask), context, stream))
        except ApplicationError as exc:
            status = exc.details[0].get("status", 0) if exc.details and isinstance(exc.details[0], dict) else 0
            self.metrics.model_call_errors.labels(response.model, str(status)).inc()
            activity.logger.warning("model call failed: %s", exc)
            async with self.sessions() as s:
                await db.fail_step(s, inp.response_id, inp.seq, str(exc))
            raise self.guard.final_once_spent(exc, inp.budget)  # noqa: B904  # the same failure, maybe final
        finally:
            self.metrics.model_call_seconds.labels(response.model).observe(time.monotonic() - started)
        self.metrics.tokens.labels(response.model, "input").inc(step.usage.input_tokens)
        self.metrics.tokens.labels(response.model, "output").inc(step.usage.output_tokens)
        partials = stream.stored_partials if stream is not None else 0
        first = inp.output_index + partials  # the output index of the step's first final item
        turn = ModelTurn(
            seq=inp.seq,
            response_id=inp.response_id,
            tool_calls=[ToolCallRef(call_id=c.get("call_id") or c["id"], name=c["name"],
                                    server_side=c["type"] == "mcp_call", output_index=first + k)
                        for k, c in enumerate(step.items) if is_pending_call(c)],
            finish_reason=step.finish_reason,
            output_items=partials + len(step.items),
            usage=step.usage,
        )
        ends = turn.completes_response
        async with self.sessions() as s:
            stored = await db.complete_step(s, inp.response_id, inp.seq, items=step.items, result=turn.model_dump(),
                                            usage=step.usage, first_index=partials, events=step.events,
                                            commit=not ends)
            # The last turn ends the response in its own transaction: the answer goes out a workflow activation
            # and a transaction sooner. The workflow's finalize then finds it ended and leaves it.
            ended = await move_status(s, inp.response_id, ResponseStatus.COMPLETED,
                                      only_from=OPEN_STATUSES) if stored and ends else None
        if ended is not None:
            observe_end(self.metrics, ended, inp.seq)
            turn.ended_response = True  # after storing it: a retry that finds the step done ends nothing
        return turn

    async def _chat(self, target: ModelTarget, payload: dict[str, Any], request: dict[str, Any], runs: Runs,
                    context: list[dict[str, Any]], stream: MessageStream | None) -> StepOutput:
        """A turn over chat completions: the completion's message as items."""
        completion = await self._complete(target, payload, stream)
        choice = completion["choices"][0]
        items = unique_ids(completion_to_items(choice.get("message") or {}, *runs,
                                               summary_mode=(request.get("reasoning") or {}).get("summary"),
                                               logprobs=(choice.get("logprobs") or {}).get("content")), context)
        events: list[dict[str, Any]] = []
        if stream is not None:
            calls = [i for i in items if is_pending_call(i)]
            message = next((i for i in items if i["type"] == "message"), None)  # with its logprobs
            items, events, index = await stream.finish(choice["message"].get("content") or "", message)
            events += [e for j, c in enumerate(calls) for e in call_events(index + j, c)]
            items += calls
        return StepOutput(items, events, choice.get("finish_reason"), Usage.from_chat(completion.get("usage")))

    async def _respond(self, target: ModelTarget, payload: dict[str, Any], runs: Runs,
                       context: list[dict[str, Any]], stream: MessageStream | None) -> StepOutput:
        """A turn over a native Responses upstream: its output items, passed through (see core.responses_items)."""
        timeout = self.settings.upstream_timeout_seconds
        if stream is None:
            result = await create_response(self.http, target, payload, timeout)
            return StepOutput(unique_ids(_items_of(result, runs), context), [], finish_reason(result),
                              Usage.from_responses(result.get("usage")))
        shown: set[int] = set()  # the upstream's output indexes of reasoning the stream is done with
        context = list(context)  # and the ones it showed, whose ids are taken now
        result = {}
        async with stream:
            async for event in stream_response(self.http, target, payload, timeout):
                kind = event.get("type")
                if kind == "response.output_text.delta":
                    await stream.text(event.get("delta") or "", event.get("logprobs"))
                elif kind == "response.output_item.done" and (event.get("item") or {}).get("type") == "reasoning":
                    [item] = unique_ids([event["item"]], context)
                    if await stream.show_item(item):
                        shown.add(event.get("output_index", -1))
                        context.append(item)
                elif kind in TERMINAL_UPSTREAM_EVENTS:
                    result = event["response"]
        rest = unique_ids([i for n, i in enumerate(_items_of(result, runs)) if n not in shown], context)
        messages = [i for i in rest if i.get("type") == "message"]
        text = "".join(p.get("text") or "" for m in messages for p in m.get("content") or []
                       if p.get("type") == "output_text")
        items, events, index = await stream.finish(text, messages[0] if len(messages) == 1 else None)
        rest = [i for i in rest if i.get("type") != "message"]
        events += [e for j, item in enumerate(rest)
                   for e in item_events(index + j, item, pending_call=is_pending_call(item))]
        return StepOutput(items + rest, events, finish_reason(result), Usage.from_responses(result.get("usage")))

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
                        await asyncio.sleep(0)  # as reading a real upstream would: the log's writer takes its turn
            return completion
        content, finish, usage = "", None, None
        logprobs: list[dict[str, Any]] = []
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
                        tokens = (choice.get("logprobs") or {}).get("content") or []
                        content += delta["content"]
                        logprobs += tokens
                        await stream.text(delta["content"], tokens)
                    for call_delta in delta.get("tool_calls") or []:
                        merge_tool_call_delta(calls, call_delta)
                    finish = choice.get("finish_reason") or finish
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        return {"choices": [{"index": 0, "message": message, "finish_reason": finish,
                             "logprobs": {"content": logprobs}}], "usage": usage}
