"""The API registry (shadowlab.apis): every registered API is found by the capture schema, the providers and
the replayer; an arm applied to a captured body (same-API replay); the one input-token estimate."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shadowlab.apis import API_NAMES, api_shape, normalize_request_body, request_models
from shadowlab.apis.internal import DEFAULT_MAX_TOKENS, TextBlock
from shadowlab.capture import CaptureError, capture_json_schema
from shadowlab.providers import provider_api, provider_names
from shadowlab.usage import estimate_input_tokens


def test_every_registered_api_has_its_shape_and_its_place_in_the_capture_schema() -> None:
    assert tuple(name for name, _ in request_models()) == API_NAMES
    schema = capture_json_schema()
    assert schema["properties"]["api"]["enum"] == list(API_NAMES)
    for name, model in request_models():
        assert api_shape(name).request_model is model
        assert model.__name__ in schema["$defs"]


def test_an_unknown_api_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(CaptureError) as refused:
        api_shape("google.gemini")
    assert refused.value.code == "unknown_api"
    assert refused.value.expected == " or ".join(API_NAMES)


def test_every_builtin_provider_speaks_a_registered_api() -> None:
    assert (provider_api("anthropic"), provider_api("openai")) == ("anthropic.messages", "openai.chat")
    assert {provider_api(name) for name in provider_names()} <= set(API_NAMES)


def test_an_anthropic_arm_sets_model_parameters_and_system_on_the_captured_body() -> None:
    body: dict[str, Any] = {
        "model": "claude-x",
        "stream": True,
        "system": [{"type": "text", "text": "old", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
    }
    sent = api_shape("anthropic.messages").with_arm(
        body,
        model="claude-y",
        params={"temperature": 0.2, "thinking_budget_tokens": 1024, "reasoning_effort": "high"},
        system="new",
    )
    assert sent.body == {
        "model": "claude-y",
        "system": "new",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "max_tokens": DEFAULT_MAX_TOKENS,
    }
    assert sent.max_output_tokens == DEFAULT_MAX_TOKENS
    assert sent.notes == ("param reasoning_effort: not sent to the Messages API",)
    assert body["stream"] is True and body["model"] == "claude-x"  # the captured body is not changed


def test_the_betas_of_a_captured_beta_messages_call_are_not_sent_as_a_body_field() -> None:
    body = {"model": "claude-x", "max_tokens": 9, "messages": [], "betas": ["context-1m-2025-08-07"]}
    sent = api_shape("anthropic.messages").with_arm(body, model="claude-y", params={}, system=None)
    assert "betas" not in sent.body
    assert sent.notes == ("request.betas: the anthropic-beta header is not sent",)


def test_an_openai_arm_replaces_every_system_and_developer_message_and_sets_the_cap() -> None:
    body: dict[str, Any] = {
        "model": "gpt-x",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 50,
        "messages": [
            {"role": "developer", "content": "a"},
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "b"},
        ],
    }
    sent = api_shape("openai.chat").with_arm(
        body, model="gpt-y", params={"max_output_tokens": 300, "top_k": 5}, system="new"
    )
    assert sent.body == {
        "model": "gpt-y",
        "max_completion_tokens": 300,
        "messages": [{"role": "system", "content": "new"}, {"role": "user", "content": "hi"}],
    }
    assert (sent.max_output_tokens, sent.notes) == (300, ("param top_k: not sent to chat completions",))
    uncapped = api_shape("openai.chat").with_arm(
        {"model": "m", "messages": []}, model="m", params={}, system=None
    )
    assert uncapped.max_output_tokens == DEFAULT_MAX_TOKENS
    assert uncapped.notes == (f"max_tokens missing: set to {DEFAULT_MAX_TOKENS}",)


def test_one_input_token_estimate_for_bodies_texts_and_the_internal_request() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x" * 400}]}
    compact = len(json.dumps(body, separators=(",", ":")))
    assert estimate_input_tokens(body) == -(-compact // 2) + 16
    assert estimate_input_tokens(body, "s" * 100) == -(-(compact + 100) // 2) + 16
    assert estimate_input_tokens(None) == 16
    request = normalize_request_body("anthropic.messages", body)
    message = request.messages[0]
    assert isinstance(message.content[0], TextBlock)
    chars = len(message.model_dump_json())
    assert estimate_input_tokens(request.system, *request.messages) == -(-chars // 2) + 16
    # an upper bound: real tokenizers average 3.5-4 characters per token
    assert estimate_input_tokens("y" * 4000) >= 4000 / 3.5
