"""OpenAI chat completions: completion bodies, SSE chunks ending in `[DONE]`, the usage chunk, errors."""

from __future__ import annotations

import time
from typing import Any

from simulator.answers import Answer
from simulator.profiles import Fault
from simulator.wire import StreamPlan, dumps

__all__ = ["ERRORS", "completion_body", "error_body", "stream_plan", "usage_of"]

# fault → (HTTP status, OpenAI error type, message); OpenAI has no 529, overload is a 503.
ERRORS: dict[Fault, tuple[int, str, str]] = {
    "rate_limit": (429, "rate_limit_exceeded", "Rate limit reached for requests (simulated)"),
    "overloaded": (503, "service_unavailable", "The server is overloaded, please try again later."),
    "server_error": (500, "server_error", "The server had an error while processing your request."),
    "bad_request": (400, "invalid_request_error", "Invalid 'messages[0].content': empty string (simulated)"),
    "stream_error": (500, "server_error", "The server had an error while processing your request."),
}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def error_body(kind: str, message: str, request_id: str) -> dict[str, Any]:
    del request_id  # OpenAI puts it in the x-request-id header only
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def usage_of(answer: Answer) -> dict[str, Any]:
    prompt = answer.input_tokens + answer.cache_creation_tokens + answer.cache_read_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": answer.output_tokens,
        "total_tokens": prompt + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": answer.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": answer.reasoning_tokens, "audio_tokens": 0},
    }


def _tool_calls(answer: Answer) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in answer.tool_calls
    ]


def completion_body(answer: Answer, model: str) -> dict[str, Any]:
    """A non-streaming chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.full_text or None, "refusal": None}
    if answer.thinking:
        message["reasoning_content"] = answer.full_thinking
    if answer.tool_calls:
        message["tool_calls"] = _tool_calls(answer)
    return {
        "id": f"chatcmpl-{answer.id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": _FINISH[answer.stop_reason], "logprobs": None}
        ],
        "usage": usage_of(answer),
        "system_fingerprint": "fp_simulator",
    }


def stream_plan(answer: Answer, model: str, chunk_tokens: int, include_usage: bool) -> StreamPlan:
    """Role chunk at TTFB; content (and vLLM-style `reasoning_content`) chunks; the finish chunk; the usage
    chunk when `stream_options.include_usage`; `[DONE]`."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
        choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        payload = {
            "id": f"chatcmpl-{answer.id}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_simulator",
            "choices": choices,
        }
        if include_usage:
            payload["usage"] = usage
        return f"data: {dumps(payload)}\n\n".encode()

    start = chunk({"role": "assistant", "content": "", "refusal": None})
    deltas: list[tuple[bytes, int]] = []
    for field, pieces in (("reasoning_content", answer.thinking), ("content", answer.text)):
        for i in range(0, len(pieces), chunk_tokens):
            part = pieces[i : i + chunk_tokens]
            deltas.append((chunk({field: "".join(part)}), len(part)))
    for index, call in enumerate(answer.tool_calls):
        deltas.append(
            (
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ]
                    }
                ),
                1,
            )
        )
        args = call.arguments
        for i in range(0, len(args), 16):
            deltas.append(
                (chunk({"tool_calls": [{"index": index, "function": {"arguments": args[i : i + 16]}}]}), 4)
            )
    end = chunk({}, finish=_FINISH[answer.stop_reason])
    if include_usage:
        end += chunk({}, usage=usage_of(answer))
    end += b"data: [DONE]\n\n"
    error = f"data: {dumps(error_body(*ERRORS['stream_error'][1:], ''))}\n\n".encode()
    return StreamPlan(start=start, deltas=tuple(deltas), end=end, error_event=error)
