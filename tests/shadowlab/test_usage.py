"""Token usage of both APIs in one object, against hand-computed values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shadowlab.apis import usage_from_capture
from shadowlab.apis.anthropic import AnthropicStreamUsage, usage_from_anthropic, usage_from_anthropic_stream
from shadowlab.apis.openai_chat import usage_from_openai
from shadowlab.capture import parse_capture_bytes
from shadowlab.usage import Usage, UsageError

MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-5",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 472,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 2048,
            "output_tokens": 2,
        },
    },
}
TEXT_DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}


def delta(usage: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {"stop_reason": None, "stop_sequence": None}, "usage": usage}


def test_anthropic_stream_deltas_replace_output_tokens_never_add() -> None:
    events: list[dict[str, Any]] = [
        MESSAGE_START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        TEXT_DELTA,
        delta({"output_tokens": 89}),
        TEXT_DELTA,
        delta({"output_tokens": 211}),
        {"type": "message_stop"},
    ]
    usage = usage_from_anthropic_stream(events)
    # Hand-computed: input side from message_start, output = last cumulative count (211, not 2 + 89 + 211).
    assert usage == Usage(
        input_tokens=472, cache_creation_input_tokens=0, cache_read_input_tokens=2048, output_tokens=211
    )
    assert usage.total_input_tokens == 472 + 0 + 2048 == 2520


def test_anthropic_stream_deltas_may_carry_input_counts_which_replace_when_present() -> None:
    accumulator = AnthropicStreamUsage()
    accumulator.add(MESSAGE_START)
    accumulator.add(delta({"input_tokens": None, "cache_read_input_tokens": 2048, "output_tokens": 30}))
    assert accumulator.usage == Usage(input_tokens=472, cache_read_input_tokens=2048, output_tokens=30)
    accumulator.add(
        delta(
            {
                "input_tokens": 480,
                "cache_creation_input_tokens": 1500,
                "cache_read_input_tokens": 0,
                "output_tokens": 64,
                "output_tokens_details": {"thinking_tokens": 40},
            }
        )
    )
    assert accumulator.usage == Usage(
        input_tokens=480, cache_creation_input_tokens=1500, output_tokens=64, reasoning_tokens=40
    )


def test_anthropic_stream_without_message_start_has_no_usage() -> None:
    with pytest.raises(UsageError, match="message_start"):
        usage_from_anthropic_stream([TEXT_DELTA, delta({"output_tokens": 3})])


def test_anthropic_message_usage() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 736,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 47,
        }
    )
    assert usage == Usage(input_tokens=736, output_tokens=47) and usage.reasoning_tokens is None


def test_anthropic_cache_writes_with_1h_ttl_and_thinking_tokens() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 21,
            "cache_creation_input_tokens": 188086,
            "cache_read_input_tokens": None,
            "cache_creation": {"ephemeral_5m_input_tokens": 88086, "ephemeral_1h_input_tokens": 100000},
            "output_tokens": 393,
            "output_tokens_details": {"thinking_tokens": 300},
            "service_tier": "standard",
        }
    )
    assert usage == Usage(
        input_tokens=21,
        cache_creation_input_tokens=188086,
        cache_read_input_tokens=0,
        output_tokens=393,
        reasoning_tokens=300,
        cache_creation_1h_input_tokens=100000,
    )
    assert usage.total_input_tokens == 188107


def test_openai_cached_prompt_tokens_and_reasoning() -> None:
    usage = usage_from_openai(
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 192,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
    )
    # Hand-computed: uncached input = 2006 - 1920 = 86; reasoning is part of the 300 output tokens.
    assert usage == Usage(
        input_tokens=86,
        cache_creation_input_tokens=0,
        cache_read_input_tokens=1920,
        output_tokens=300,
        reasoning_tokens=192,
    )
    assert usage.total_input_tokens == 2006


def test_openai_cache_writes_are_separated_from_uncached_input() -> None:
    usage = usage_from_openai(
        {
            "prompt_tokens": 5000,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 3000},
        }
    )
    assert usage == Usage(
        input_tokens=976, cache_creation_input_tokens=3000, cache_read_input_tokens=1024, output_tokens=10
    )


def test_openai_usage_without_details() -> None:
    usage = usage_from_openai(
        {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99, "prompt_tokens_details": None}
    )
    assert usage == Usage(input_tokens=82, output_tokens=17) and usage.reasoning_tokens is None


@pytest.mark.parametrize(
    ("parse", "usage", "field"),
    [
        (usage_from_openai, {"completion_tokens": 1}, "prompt_tokens"),
        (usage_from_openai, {"prompt_tokens": "12", "completion_tokens": 1}, "prompt_tokens"),
        (
            usage_from_openai,
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 11}},
            "prompt_tokens_details.cached_tokens",
        ),
        (
            usage_from_openai,
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": [1]},
            "prompt_tokens_details",
        ),
        (
            usage_from_openai,
            {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "completion_tokens_details": {"reasoning_tokens": 6},
            },
            "reasoning_tokens",
        ),
        (usage_from_anthropic, {"input_tokens": 5}, "output_tokens"),
        (usage_from_anthropic, {"input_tokens": -1, "output_tokens": 3}, "input_tokens"),
        (usage_from_anthropic, {"input_tokens": True, "output_tokens": 3}, "input_tokens"),
    ],
)
def test_bad_usage_names_the_field(parse: Any, usage: dict[str, Any], field: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(usage)
    assert caught.value.field == field and str(caught.value).startswith(f"usage.{field}: expected ")


@pytest.mark.parametrize(
    ("api", "usage", "expected"),
    [
        (
            "anthropic.messages",
            {"input_tokens": 25, "output_tokens": 15},
            Usage(input_tokens=25, output_tokens=15),
        ),
        (
            "openai.chat",
            {"prompt_tokens": 25, "completion_tokens": 15},
            Usage(input_tokens=25, output_tokens=15),
        ),
        ("openai.chat", None, None),
    ],
)
def test_usage_from_capture_dispatches_on_api(
    api: str, usage: dict[str, Any] | None, expected: Usage | None
) -> None:
    request = (
        {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
        if api == "anthropic.messages"
        else {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Hi"}]}
    )
    raw = json.dumps(
        {
            "schema_version": 1,
            "request_id": "r",
            "captured_at": "2025-01-01T00:00:00Z",
            "source": {"service": "s"},
            "api": api,
            "request": request,
            "response": {"text": "Hello", "usage": usage},
        }
    ).encode()
    assert usage_from_capture(parse_capture_bytes(raw)) == expected


def test_usage_is_frozen() -> None:
    usage = Usage(input_tokens=1)
    with pytest.raises(AttributeError):
        usage.input_tokens = 2  # type: ignore[misc]
