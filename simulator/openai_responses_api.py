"""The OpenAI Responses API as the official SDK expects it: response bodies, the SSE event sequence, errors.

A stream is `response.created`, `response.in_progress`, then one output item at a time (`reasoning` with its
summary deltas, `message` with its `output_text` deltas, `function_call` with its argument deltas), each
opened by `response.output_item.added` and closed by `response.output_item.done`, and last
`response.completed` (or `response.incomplete` when the answer hit `max_output_tokens`) carrying the whole
response with its usage. Every event has a `sequence_number`; there is no `[DONE]`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from simulator.answers import Answer
from simulator.openai_api import ERRORS, error_body
from simulator.requests import RequestView
from simulator.wire import StreamPlan, dumps

# ERRORS and error_body: the same statuses and error objects as chat completions
__all__ = ["ERRORS", "error_body", "response_body", "stream_plan", "usage_of"]


def usage_of(answer: Answer) -> dict[str, Any]:
    """`input_tokens` includes the cached ones, `output_tokens` the reasoning ones (as OpenAI reports)."""
    prompt = answer.input_tokens + answer.cache_creation_tokens + answer.cache_read_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": answer.cache_read_tokens, "cache_write_tokens": 0},
        "output_tokens": answer.output_tokens,
        "output_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
        "total_tokens": prompt + answer.output_tokens,
    }


def _items(answer: Answer) -> list[dict[str, Any]]:
    """The output items of a finished answer: reasoning (its summary), message, function calls."""
    items: list[dict[str, Any]] = []
    if answer.thinking:
        summary = [{"type": "summary_text", "text": answer.full_thinking}]
        items.append(
            {"id": f"rs_{answer.id}", "type": "reasoning", "summary": summary, "status": "completed"}
        )
    if answer.text:
        part = {"type": "output_text", "text": answer.full_text, "annotations": [], "logprobs": []}
        message = {"id": f"msg_{answer.id}", "type": "message", "role": "assistant", "status": "completed"}
        items.append({**message, "content": [part]})
    for call in answer.tool_calls:
        fields = {"call_id": call.id, "name": call.name, "arguments": call.arguments, "status": "completed"}
        items.append({"id": f"fc_{call.id}", "type": "function_call", **fields})
    return items


def response_body(answer: Answer, view: RequestView, *, done: bool = True) -> dict[str, Any]:
    """A response object: whole (`done`), or as `response.created` shows it (no output, no usage yet)."""
    incomplete = done and answer.stop_reason == "max_tokens"
    return {
        "id": f"resp_{answer.id}",
        "object": "response",
        "created_at": int(time.time()),
        "status": ("incomplete" if incomplete else "completed") if done else "in_progress",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": None,
        "max_output_tokens": view.max_tokens,
        "model": view.model,
        "output": _items(answer) if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "medium" if view.thinking else None, "summary": None},
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage_of(answer) if done else None,
        "metadata": {},
    }


class _Events:
    """Encodes events with their running `sequence_number`."""

    def __init__(self) -> None:
        self._numbers: Iterator[int] = itertools.count()

    def __call__(self, kind: str, **payload: Any) -> bytes:
        event = {"type": kind, "sequence_number": next(self._numbers), **payload}
        return f"event: {kind}\ndata: {dumps(event)}\n\n".encode()


def stream_plan(answer: Answer, view: RequestView, chunk_tokens: int) -> StreamPlan:
    """created + in_progress at TTFB; each output item with its deltas; completed (or incomplete)."""
    event = _Events()
    start = event("response.created", response=response_body(answer, view, done=False))
    start += event("response.in_progress", response=response_body(answer, view, done=False))
    deltas: list[tuple[bytes, int]] = []
    for index, item in enumerate(_items(answer)):
        opened = event("response.output_item.added", output_index=index, item=_opened(item))
        if item["type"] == "reasoning":
            deltas += _reasoning(event, item, index, answer.thinking, chunk_tokens, opened)
        elif item["type"] == "message":
            deltas += _message(event, item, index, answer.text, chunk_tokens, opened)
        else:
            deltas += _function_call(event, item, index, opened)
        deltas.append((event("response.output_item.done", output_index=index, item=item), 0))
    body = response_body(answer, view)
    end = event(f"response.{body['status']}", response=body)
    error = event("error", code="server_error", message=ERRORS["stream_error"][2], param=None)
    return StreamPlan(start=start, deltas=tuple(deltas), end=end, error_event=error)


def _opened(item: dict[str, Any]) -> dict[str, Any]:
    """An item as `output_item.added` shows it: in progress, nothing generated yet."""
    empty: dict[str, Any] = {"reasoning": {"summary": []}, "message": {"content": []}}.get(item["type"], {})
    if item["type"] == "function_call":
        empty = {"arguments": ""}
    return {**item, **empty, "status": "in_progress"}


def _pieces(tokens: tuple[str, ...], size: int) -> list[tuple[str, int]]:
    return [("".join(tokens[i : i + size]), len(tokens[i : i + size])) for i in range(0, len(tokens), size)]


def _reasoning(
    event: _Events, item: dict[str, Any], index: int, tokens: tuple[str, ...], size: int, opened: bytes
) -> list[tuple[bytes, int]]:
    where = {"item_id": item["id"], "output_index": index, "summary_index": 0}
    head = opened + event("response.reasoning_summary_part.added", **where, part=_summary(""))
    out = [
        (
            (head if n == 0 else b"") + event("response.reasoning_summary_text.delta", **where, delta=text),
            count,
        )
        for n, (text, count) in enumerate(_pieces(tokens, size))
    ]
    text = "".join(tokens)
    tail = event("response.reasoning_summary_text.done", **where, text=text)
    return [*out, (tail + event("response.reasoning_summary_part.done", **where, part=_summary(text)), 0)]


def _summary(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def _message(
    event: _Events, item: dict[str, Any], index: int, tokens: tuple[str, ...], size: int, opened: bytes
) -> list[tuple[bytes, int]]:
    where = {"item_id": item["id"], "output_index": index, "content_index": 0}
    part = item["content"][0]
    head = opened + event("response.content_part.added", **where, part={**part, "text": ""})
    out = [
        (
            (head if n == 0 else b"") + event("response.output_text.delta", **where, delta=text, logprobs=[]),
            count,
        )
        for n, (text, count) in enumerate(_pieces(tokens, size))
    ]
    tail = event("response.output_text.done", **where, text=part["text"], logprobs=[])
    return [*out, (tail + event("response.content_part.done", **where, part=part), 0)]


def _function_call(
    event: _Events, item: dict[str, Any], index: int, opened: bytes
) -> list[tuple[bytes, int]]:
    where = {"item_id": item["id"], "output_index": index}
    args = item["arguments"]
    parts = [args[i : i + 16] for i in range(0, len(args), 16)] or [""]
    out = [
        (
            (opened if n == 0 else b"")
            + event("response.function_call_arguments.delta", **where, delta=part),
            4,
        )
        for n, part in enumerate(parts)
    ]
    done = event("response.function_call_arguments.done", **where, name=item["name"], arguments=args)
    return [*out, (done, 0)]
