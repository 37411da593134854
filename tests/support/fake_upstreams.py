"""Real-shaped Anthropic and OpenAI upstreams on httpx2.MockTransport, shared by the tee tests.

`handle` answers Anthropic `/v1/messages` and OpenAI `/v1/chat/completions` at once; `anthropic_client` and
`openai_client` are the official SDK clients on it. tests/shadowlab/test_tee_fakes.py checks that the SDKs,
unwrapped, accept these bodies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai

# Real-looking keys: the tee must never let them into a capture.
ANTHROPIC_KEY = "sk-ant-api03-" + "Zq8Xv2Lm4Np6Rt1Yw3Kc5Hb7Jd9Fg0Sa" * 3 + "-AbCdEfGh"
OPENAI_KEY = "sk-proj-" + "T3BlbkFJq9Wm2Xe5Rz8Lc1Vb4Nd7Gh0Kp" * 3
TEXT_PARTS = ("Hello", ", ", "world", "!")
TOOL_INPUT = {"city": "Paris", "unit": "celsius"}


# ---- Anthropic ------------------------------------------------------------------------------------


def anthropic_message(model: str, tools: bool) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": "".join(TEXT_PARTS)}]
    if tools:
        content.append({"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": TOOL_INPUT})
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if tools else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 21,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 7,
            "output_tokens": 12,
        },
    }


def anthropic_events(model: str, tools: bool) -> list[dict[str, Any]]:
    start = anthropic_message(model, tools) | {"content": [], "stop_reason": None}
    start["usage"] = {
        "input_tokens": 21,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 7,
        "output_tokens": 1,
    }
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}}
        for part in TEXT_PARTS
    ]
    events.append({"type": "content_block_stop", "index": 0})
    if tools:
        raw = json.dumps(TOOL_INPUT)
        events.append(
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}},
            }
        )
        events += [
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": p},
            }
            for p in (raw[:9], raw[9:])
        ]
        events.append({"type": "content_block_stop", "index": 1})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if tools else "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 12},  # cumulative: replaces message_start's 1
        }
    )
    events.append({"type": "message_stop"})
    return events


def anthropic_sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


# ---- OpenAI ---------------------------------------------------------------------------------------

OPENAI_USAGE = {
    "prompt_tokens": 30,
    "completion_tokens": 12,
    "total_tokens": 42,
    "prompt_tokens_details": {"cached_tokens": 10},
}


def openai_completion(model: str, tools: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(TEXT_PARTS)}
    if tools:
        message["tool_calls"] = [
            {
                "id": "call_01",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(TOOL_INPUT)},
            }
        ]
    return {
        "id": "chatcmpl-01",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tools else "stop"}],
        "usage": OPENAI_USAGE,
    }


def openai_chunks(model: str, tools: bool) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-01",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": part}) for part in TEXT_PARTS]
    if tools:
        raw = json.dumps(TOOL_INPUT)
        head = {
            "index": 0,
            "id": "call_01",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [head]}))
        chunks += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in (raw[:9], raw[9:])
        ]
    chunks.append(chunk({}, "tool_calls" if tools else "stop"))
    chunks.append(
        {
            "id": "chatcmpl-01",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [],
            "usage": OPENAI_USAGE,
        }
    )
    return chunks


def openai_sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


# ---- the upstream ---------------------------------------------------------------------------------

RATE_LIMITED_MODEL = "rate-limited"  # answers 429
TOOLS_MODEL = "tools-model"  # answers with a tool call


def handle(request: httpx2.Request) -> httpx2.Response:
    """Anthropic `/v1/messages` and OpenAI `/v1/chat/completions`, streaming or not, answering at once."""
    body = json.loads(request.content)
    model, stream, tools = body["model"], bool(body.get("stream")), body["model"] == TOOLS_MODEL
    is_anthropic = request.url.path.endswith("/messages")
    if model == RATE_LIMITED_MODEL:
        error = (
            {"type": "error", "error": {"type": "rate_limit_error", "message": "Too many requests"}}
            if is_anthropic
            else {
                "error": {"message": "Too many requests", "type": "requests", "code": "rate_limit_exceeded"}
            }
        )
        return httpx2.Response(429, json=error, headers={"retry-after": "1"})
    if not stream:
        payload = anthropic_message(model, tools) if is_anthropic else openai_completion(model, tools)
        return httpx2.Response(200, json=payload)
    sse = (
        anthropic_sse(anthropic_events(model, tools))
        if is_anthropic
        else openai_sse(openai_chunks(model, tools))
    )
    return httpx2.Response(200, content=sse, headers={"content-type": "text/event-stream"})


Handler = Callable[[httpx2.Request], httpx2.Response]


def _client(sdk: Any, async_sdk: Any, api_key: str, handler: Handler, is_async: bool) -> Any:
    """An SDK client, without retries, whose every request `handler` answers."""
    transport = httpx2.MockTransport(handler)
    if is_async:
        return async_sdk(api_key=api_key, max_retries=0, http_client=httpx2.AsyncClient(transport=transport))
    return sdk(api_key=api_key, max_retries=0, http_client=httpx2.Client(transport=transport))


def anthropic_client(handler: Handler = handle, *, is_async: bool = False) -> Any:
    return _client(anthropic.Anthropic, anthropic.AsyncAnthropic, ANTHROPIC_KEY, handler, is_async)


def openai_client(handler: Handler = handle, *, is_async: bool = False) -> Any:
    return _client(openai.OpenAI, openai.AsyncOpenAI, OPENAI_KEY, handler, is_async)


ANTHROPIC_REQUEST: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 64,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "Say hello"}],
    "stop_sequences": ["END"],
}
OPENAI_REQUEST: dict[str, Any] = {
    "model": "gpt-test",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
    "temperature": 0.2,
}
