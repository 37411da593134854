"""The prompt fingerprint: one per conversation whatever the model, API shape, stream flags or key order."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shadowlab.apis import normalize_request_body
from shadowlab.fingerprint import FINGERPRINT_CHARS, body_fingerprint, prompt_fingerprint

PINNED = "fb76bca8fda0906956b5662ea69e1aaa"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
ANTHROPIC: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 300,
    "temperature": 0.2,
    "stream": True,
    "system": [{"type": "text", "text": "You are a weather bot.", "cache_control": {"type": "ephemeral"}}],
    "tools": [{"name": "weather", "description": "Look up the weather", "input_schema": WEATHER}],
    "tool_choice": {"type": "auto"},
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]},
    ],
}
OPENAI: dict[str, Any] = {
    "stream_options": {"include_usage": True},
    "stream": False,
    "messages": [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": json.dumps({"city": "Paris"})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Look up the weather", "parameters": WEATHER},
        }
    ],
    "tool_choice": "auto",
    "temperature": 0.2,
    "max_tokens": 300,
    "model": "gpt-4o-mini",
}


def test_the_same_conversation_in_both_api_shapes_has_one_fingerprint() -> None:
    anthropic = body_fingerprint("anthropic.messages", ANTHROPIC)
    assert anthropic == body_fingerprint("openai.chat", OPENAI)
    assert len(anthropic) == FINGERPRINT_CHARS and int(anthropic, 16) >= 0
    assert anthropic == prompt_fingerprint(normalize_request_body("anthropic.messages", ANTHROPIC))


def test_model_stream_flags_key_order_and_cache_markers_do_not_count() -> None:
    other = dict(reversed(list(copy.deepcopy(ANTHROPIC).items())))
    other.update(model="claude-opus-4-1", stream=False)
    other["system"] = "You are a weather bot."  # string form, no cache_control marker
    other["temperature"] = 0.2000
    assert body_fingerprint("anthropic.messages", other) == body_fingerprint("anthropic.messages", ANTHROPIC)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("system", "You are a travel bot."),
        ("temperature", 0.0),
        ("max_tokens", 301),
        ("tool_choice", {"type": "any"}),
        ("tools", []),
        ("messages", [{"role": "user", "content": "Weather in Rome?"}]),
    ],
)
def test_what_shapes_the_answer_changes_the_fingerprint(field: str, value: Any) -> None:
    original = body_fingerprint("anthropic.messages", ANTHROPIC)
    assert body_fingerprint("anthropic.messages", {**ANTHROPIC, field: value}) != original


def test_the_fingerprint_is_stable_across_releases() -> None:
    # Stored in captured_requests and backfilled by a migration: a change here splits old and new rows.
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}
    assert body_fingerprint("anthropic.messages", body) == PINNED


def test_a_body_that_does_not_normalise_is_hashed_as_stored() -> None:
    broken = {"model": "m", "messages": "not a list"}
    first = body_fingerprint("anthropic.messages", broken)
    assert first == body_fingerprint("anthropic.messages", {**broken, "model": "n", "stream": True})
    assert first != body_fingerprint("openai.chat", broken)
    assert body_fingerprint("no.such.api", ANTHROPIC) != body_fingerprint("anthropic.messages", ANTHROPIC)
    assert len(body_fingerprint("anthropic.messages", None)) == FINGERPRINT_CHARS
