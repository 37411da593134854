"""The Anthropic Messages API as the official SDK expects it: message bodies, SSE event sequence, errors."""

from __future__ import annotations

from typing import Any

from simulator.answers import Answer
from simulator.profiles import Fault
from simulator.wire import StreamPlan, dumps

__all__ = ["ERRORS", "error_body", "message_body", "stream_plan", "usage_of"]

# fault → (HTTP status, Anthropic error type, message)
ERRORS: dict[Fault, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
    ),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "bad_request": (
        400,
        "invalid_request_error",
        "messages: text content blocks must be non-empty (simulated)",
    ),
    "stream_error": (500, "api_error", "Internal server error"),
}


def error_body(kind: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


def usage_of(answer: Answer, *, output_tokens: int | None = None) -> dict[str, Any]:
    return {
        "input_tokens": answer.input_tokens,
        "cache_creation_input_tokens": answer.cache_creation_tokens,
        "cache_read_input_tokens": answer.cache_read_tokens,
        "output_tokens": answer.output_tokens if output_tokens is None else output_tokens,
    }


def _content(answer: Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.thinking:
        blocks.append({"type": "thinking", "thinking": answer.full_thinking, "signature": _signature(answer)})
    if answer.text:
        blocks.append({"type": "text", "text": answer.full_text})
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in answer.tool_calls]
    return blocks


def _signature(answer: Answer) -> str:
    return f"sim-signature-{answer.id}"


def message_body(answer: Answer, model: str) -> dict[str, Any]:
    """A non-streaming Messages API response."""
    return {
        "id": f"msg_{answer.id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _content(answer),
        "stop_reason": answer.stop_reason,
        "stop_sequence": answer.stop_sequence,
        "usage": usage_of(answer),
    }


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {dumps({'type': kind, **payload})}\n\n".encode()


def _chunks(pieces: tuple[str, ...], size: int) -> list[tuple[str, int]]:
    return [("".join(pieces[i : i + size]), len(pieces[i : i + size])) for i in range(0, len(pieces), size)]


def stream_plan(answer: Answer, model: str, chunk_tokens: int) -> StreamPlan:
    """message_start (input-side usage) and ping at TTFB; blocks with their deltas; message_delta with the
    stop reason and cumulative usage; message_stop."""
    start_message = {
        **message_body(answer, model),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage_of(answer, output_tokens=1),
    }
    start = _event("message_start", {"message": start_message}) + _event("ping", {})
    deltas: list[tuple[bytes, int]] = []
    index = 0
    if answer.thinking:
        head = _event(
            "content_block_start",
            {"index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        )
        for n, (text, tokens) in enumerate(_chunks(answer.thinking, chunk_tokens)):
            delta = _event(
                "content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": text}}
            )
            deltas.append(((head if n == 0 else b"") + delta, tokens))
        signature = _event(
            "content_block_delta",
            {"index": index, "delta": {"type": "signature_delta", "signature": _signature(answer)}},
        )
        deltas.append((signature + _event("content_block_stop", {"index": index}), 0))
        index += 1
    if answer.text:
        head = _event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
        for n, (text, tokens) in enumerate(_chunks(answer.text, chunk_tokens)):
            delta = _event(
                "content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": text}}
            )
            deltas.append(((head if n == 0 else b"") + delta, tokens))
        deltas.append((_event("content_block_stop", {"index": index}), 0))
        index += 1
    for call in answer.tool_calls:
        head = _event(
            "content_block_start",
            {
                "index": index,
                "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
            },
        )
        args = call.arguments
        parts = [args[i : i + 16] for i in range(0, len(args), 16)]
        for n, part in enumerate(parts):
            delta = _event(
                "content_block_delta",
                {"index": index, "delta": {"type": "input_json_delta", "partial_json": part}},
            )
            deltas.append(((head if n == 0 else b"") + delta, 4))
        deltas.append((_event("content_block_stop", {"index": index}), 0))
        index += 1
    end = _event(
        "message_delta",
        {
            "delta": {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence},
            "usage": usage_of(answer),
        },
    ) + _event("message_stop", {})
    error = _event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    return StreamPlan(start=start, deltas=tuple(deltas), end=end, error_event=error)
