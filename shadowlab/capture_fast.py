"""A structural fast path for the common capture: its envelope and an Anthropic Messages body, by msgspec.

`Capture.model_validate` costs ingest about 27 µs a capture (most of it the request body's nested models and
their Python tag callbacks); msgspec structs check the same fields in about 5. The structs below accept
only what the pydantic models accept — every field those models declare is declared here with the same or
a narrower type (`tool_choice` and `thinking` only absent or null; content blocks only text, tool_use and
tool_result; custom tools only), constraints msgspec cannot say are checked after it, and `captured_at`
goes through the model's own validator — so a capture accepted here is valid. Anything else answers None
and is validated by pydantic, which alone reports errors: dead-letter reasons are the model's.
tests/shadowlab/test_capture_fast.py compares both on fixtures, the hostile corpus and mutated captures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import msgspec
from pydantic_core import PydanticCustomError

__all__ = ["FastCapture", "fast_capture"]

_ANTHROPIC = "anthropic.messages"


class _Text(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class _ToolUse(msgspec.Struct, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


class _ToolResult(msgspec.Struct, tag_field="type", tag="tool_result"):
    tool_use_id: str
    content: str | list[_Text] = ""
    is_error: bool | None = None


class _Message(msgspec.Struct):
    role: Literal["user", "assistant"]
    content: str | list[_Text | _ToolUse | _ToolResult]


class _Tool(msgspec.Struct):
    name: str
    input_schema: dict[str, Any]
    description: str | None = None
    type: Literal["custom"] | None = None


class _Request(msgspec.Struct):
    model: str
    max_tokens: int
    messages: list[_Message]
    system: str | list[_Text] | None = None
    tools: list[_Tool] | None = None
    tool_choice: None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    thinking: None = None
    metadata: dict[str, Any] | None = None
    stream: bool | None = None


class _Source(msgspec.Struct):
    service: str
    route: str | None = None
    environment: str | None = None
    conversation_id: str | None = None
    user_hash: str | None = None
    tags: dict[str, str] = {}


class _Response(msgspec.Struct):
    text: str | None = None
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None
    usage_status: Literal["reported", "absent"] | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    error: Any = None
    tool_calls: list[dict[str, Any]] | None = None


class _Envelope(msgspec.Struct):
    request_id: str
    captured_at: str
    source: _Source
    api: Literal["anthropic.messages"]
    request: _Request
    response: _Response | None = None


@dataclass(frozen=True, slots=True)
class FastCapture:
    """A capture the fast path validated: the fields of `Capture` that ingest reads, with the same values."""

    request_id: str
    schema_version: int
    captured_at: datetime
    source: _Source
    api: str
    request: _Request
    response: _Response | None


def fast_capture(data: Mapping[str, Any], captured_at: Any) -> FastCapture | None:
    """`data` as a `FastCapture` when it is a common, valid capture of schema version 1; None when the
    pydantic model must decide (an uncommon shape, or any error). `captured_at` is the model's validator
    of that field (`shadowlab.capture`), so both parse a time the same way."""
    version = data.get("schema_version")
    if type(version) is not int or version != 1 or data.get("api") != _ANTHROPIC:
        return None
    try:
        envelope = msgspec.convert(data, _Envelope, strict=True)
        at = captured_at(envelope.captured_at)
    except (msgspec.ValidationError, PydanticCustomError):
        return None
    request, response = envelope.request, envelope.response
    if (
        not 1 <= len(envelope.request_id) <= 128
        or not envelope.source.service
        or (response is not None and not (_at_least_0(response.ttft_ms) and _at_least_0(response.latency_ms)))
    ):
        return None
    return FastCapture(envelope.request_id, 1, at, envelope.source, _ANTHROPIC, request, response)


def _at_least_0(value: float | None) -> bool:
    return value is None or value >= 0  # NaN is not
