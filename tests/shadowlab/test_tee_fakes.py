"""Real-shaped Anthropic and OpenAI upstreams on httpx2.MockTransport, shared by the tee tests.

Other tee test modules load this file with `load_fakes()` (pytest's importlib mode makes test modules
not importable by name). The tests here check that the official SDKs, unwrapped, accept these bodies.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import anthropic
import httpx2
import openai

# Real-looking keys: the tee must never let them into a capture.
ANTHROPIC_KEY = "sk-ant-api03-" + "Zq8Xv2Lm4Np6Rt1Yw3Kc5Hb7Jd9Fg0Sa" * 3 + "-AbCdEfGh"
OPENAI_KEY = "sk-proj-" + "T3BlbkFJq9Wm2Xe5Rz8Lc1Vb4Nd7Gh0Kp" * 3
TEXT_PARTS = ("Hello", ", ", "world", "!")
TOOL_INPUT = {"city": "Paris", "unit": "celsius"}


def load_fakes() -> ModuleType:
    """This module, loaded once by path (for the other tee test modules)."""
    name = "shadowlab_test_tee_fakes"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


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


def anthropic_client(
    handler: Callable[[httpx2.Request], httpx2.Response] = handle, *, is_async: bool = False
) -> Any:
    transport = httpx2.MockTransport(handler)
    if is_async:
        return anthropic.AsyncAnthropic(
            api_key=ANTHROPIC_KEY, max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
        )
    return anthropic.Anthropic(
        api_key=ANTHROPIC_KEY, max_retries=0, http_client=httpx2.Client(transport=transport)
    )


def openai_client(
    handler: Callable[[httpx2.Request], httpx2.Response] = handle, *, is_async: bool = False
) -> Any:
    transport = httpx2.MockTransport(handler)
    if is_async:
        return openai.AsyncOpenAI(
            api_key=OPENAI_KEY, max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
        )
    return openai.OpenAI(api_key=OPENAI_KEY, max_retries=0, http_client=httpx2.Client(transport=transport))


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


# ---- the fakes satisfy the official SDKs ----------------------------------------------------------


def test_anthropic_sdk_reads_the_fake_stream_and_message() -> None:
    client = anthropic_client()
    message = client.messages.create(**ANTHROPIC_REQUEST | {"model": TOOLS_MODEL})
    assert message.content[1].input == TOOL_INPUT
    with client.messages.stream(**ANTHROPIC_REQUEST) as stream:
        assert "".join(stream.text_stream) == "Hello, world!"
        final = stream.get_final_message()
    assert final.usage.output_tokens == 12 and final.usage.cache_read_input_tokens == 7


def test_openai_sdk_reads_the_fake_chunks_and_completion() -> None:
    client = openai_client()
    completion = client.chat.completions.create(**OPENAI_REQUEST | {"model": TOOLS_MODEL})
    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"
    chunks = list(client.chat.completions.create(**OPENAI_REQUEST, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello, world!"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 42
