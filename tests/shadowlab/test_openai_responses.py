"""The OpenAI Responses API (`openai.responses`): captures validate, bodies normalise and translate to and
from Anthropic Messages and chat completions, usage keeps cached and reasoning tokens, an arm applies to a
captured body, and the provider streams from the simulator over HTTP with exact TTFT."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from shadowlab.apis import api_shape, normalize_request_body
from shadowlab.apis.internal import DEFAULT_MAX_TOKENS, TextBlock, ToolResultBlock, ToolUseBlock
from shadowlab.capture import CaptureError, capture_from_dict
from shadowlab.config import Settings
from shadowlab.fingerprint import body_fingerprint
from shadowlab.providers import ProviderConfig, ProviderResult, provider_api
from shadowlab.providers.registry import config_from_settings
from shadowlab.usage import Usage
from simulator import Distribution, ModelProfile, ProfileSet, RunningSimulator, running_simulator
from tests.support.provider_calls import complete_once

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# A second turn as the SDK sends it back: the first answer's output items, then the function's output.
BODY: dict[str, Any] = {
    "model": "gpt-5",
    "instructions": "Answer briefly.",
    "input": [
        {"role": "developer", "content": "Use metric units."},
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
        {
            "type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
            "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}],
        },
        {
            "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
            "arguments": '{"city": "Paris"}', "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "18 C, sunny"},
    ],
    "tools": [WEATHER_TOOL, {"type": "web_search"}],
    "tool_choice": "auto",
    "max_output_tokens": 300,
    "temperature": 0.5,
    "reasoning": {"effort": "low"},
    "previous_response_id": "resp_0",
    "store": False,
    "stream": True,
}  # fmt: skip


def test_a_second_turn_normalises_to_the_internal_request() -> None:
    request = normalize_request_body("openai.responses", BODY)
    assert request.source_api == "openai.responses" and request.model == "gpt-5"
    assert request.system == "Answer briefly.\n\nUse metric units."
    user, assistant, results = request.messages
    assert (user.role, user.content) == ("user", (TextBlock(text="Weather in Paris?"),))
    assert assistant.role == "assistant" and assistant.content == (
        TextBlock(text="Let me check."),
        ToolUseBlock(id="call_1", name="get_weather", input={"city": "Paris"}),
    )
    assert results.role == "user" and results.content == (
        ToolResultBlock(tool_use_id="call_1", content=(TextBlock(text="18 C, sunny"),)),
    )
    assert [t.name for t in request.tools] == ["get_weather"]
    assert request.tool_choice is not None and request.tool_choice.type == "auto"
    assert (request.max_output_tokens, request.temperature, request.reasoning_effort) == (300, 0.5, "low")
    assert request.untranslated == (
        "previous_response_id (the earlier turns are kept by the API, not in the capture)",
        "reasoning item (only the API that made it can read it)",
        "tool web_search",
    )


def test_a_plain_string_input_is_one_user_turn() -> None:
    request = normalize_request_body("openai.responses", {"model": "gpt-5", "input": "Hi"})
    assert [(m.role, m.content) for m in request.messages] == [("user", (TextBlock(text="Hi"),))]
    assert request.untranslated == ()


def test_a_capture_of_the_responses_api_validates_and_refuses_bad_arguments() -> None:
    envelope = {
        "schema_version": 1, "request_id": "r1", "captured_at": "2025-06-01T12:00:00Z",
        "source": {"service": "s"}, "api": "openai.responses", "request": BODY,
    }  # fmt: skip
    capture = capture_from_dict(envelope)
    assert capture.api == "openai.responses" and capture.to_json_dict()["request"] == BODY
    bad = json.loads(json.dumps(BODY))
    bad["input"][4]["arguments"] = "[1, 2]"
    with pytest.raises(CaptureError) as refused:
        capture_from_dict(envelope | {"request": bad})
    assert refused.value.field == "request.input[4].arguments" and refused.value.code == "invalid_value"


def test_translations_to_chat_and_anthropic_and_back_keep_the_conversation() -> None:
    request = normalize_request_body("openai.responses", BODY)
    chat = api_shape("openai.chat").translate(request)
    back_from_chat = normalize_request_body("openai.chat", chat.body)
    claude = api_shape("anthropic.messages").translate(request)
    back_from_claude = normalize_request_body("anthropic.messages", claude.body)
    for back in (back_from_chat, back_from_claude):
        assert (back.system, back.messages, back.tools) == (request.system, request.messages, request.tools)
    assert chat.body["reasoning_effort"] == "low" and "reasoning_effort=low" in claude.dropped
    responses = api_shape("openai.responses").translate(back_from_claude)
    assert normalize_request_body("openai.responses", responses.body).messages == request.messages
    assert responses.body["input"][-1] == {
        "type": "function_call_output", "call_id": "call_1", "output": "18 C, sunny",
    }  # fmt: skip


def test_an_anthropic_request_translates_to_responses_saying_what_it_drops() -> None:
    request = normalize_request_body(
        "anthropic.messages",
        {
            "model": "claude-x", "max_tokens": 64, "top_k": 5, "stop_sequences": ["END"],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "Hi"}],
        },
    )  # fmt: skip
    translation = api_shape("openai.responses").translate(request, model="gpt-5")
    assert translation.body == {
        "model": "gpt-5", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        "max_output_tokens": 64,
    }  # fmt: skip
    assert translation.dropped == (
        "top_k=5",
        "stop sequences (1): the Responses API has none",
        "thinking (budget 1024 tokens)",
    )


def test_one_fingerprint_for_one_prompt_through_chat_or_responses() -> None:
    chat = {
        "model": "gpt-4.1",
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
    }
    responses = {"model": "gpt-5", "instructions": "S", "input": "Q", "stream": True}
    assert body_fingerprint("openai.chat", chat) == body_fingerprint("openai.responses", responses)


def test_an_arm_sets_model_parameters_and_instructions_on_the_captured_body() -> None:
    sent = api_shape("openai.responses").with_arm(
        BODY, model="gpt-5-mini", params={"reasoning_effort": "high", "top_k": 3}, system="new"
    )
    assert sent.body["model"] == "gpt-5-mini" and sent.body["instructions"] == "new"
    assert sent.body["reasoning"] == {"effort": "high"} and "stream" not in sent.body
    assert all(item.get("role") != "developer" for item in sent.body["input"])
    assert sent.max_output_tokens == 300
    assert sent.notes == (
        "param top_k: not sent to the Responses API",
        "previous_response_id sent as captured: the arm's provider must hold that state",
    )
    bare = api_shape("openai.responses").with_arm(
        {"model": "m", "input": "x"}, model="m", params={}, system=None
    )
    assert bare.max_output_tokens == DEFAULT_MAX_TOKENS and bare.notes[-1].startswith(
        "max_output_tokens missing"
    )


def test_usage_counts_cached_input_and_reasoning_output_apart() -> None:
    usage = api_shape("openai.responses").usage(
        {
            "input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 256}, "total_tokens": 1500,
        }
    )  # fmt: skip
    assert usage == Usage(
        input_tokens=176, cache_read_input_tokens=1024, output_tokens=300, reasoning_tokens=256
    )


# --- the provider, against the simulator --------------------------------------------------------------
FAST = ModelProfile(
    ttfb_ms=Distribution(median=2),
    ttft_ms=Distribution(median=5),
    tokens_per_s=20_000,
    output_tokens=Distribution(median=40, low=40, high=40),
    thinking_tokens=24,
    cache_min_tokens=100,
)
LONG_INSTRUCTIONS = "You are a careful analyst of database workloads. " * 40


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(seed=5, profiles=ProfileSet(default=FAST)) as running:
        yield running


def _complete(sim: RunningSimulator, body: dict[str, Any], headers: dict[str, str]) -> ProviderResult:
    config = ProviderConfig(base_url=sim.openai_base_url, api_key=SecretStr("sk-test"))
    return complete_once("openai_responses", config, body, headers)


def test_the_provider_speaks_responses_with_openai_settings() -> None:
    assert provider_api("openai_responses") == "openai.responses"
    settings = Settings(OPENAI_API_KEY="sk-o", openai_base_url="http://sim:2/v1")
    config = config_from_settings("openai_responses", settings)
    assert config.base_url == "http://sim:2/v1" and config.api_key is not None


def test_provider_ttft_is_the_first_reasoning_delta_and_usage_has_cached_and_reasoning(
    sim: RunningSimulator,
) -> None:
    body = {
        "model": "gpt-5",
        "instructions": LONG_INSTRUCTIONS,
        "input": "Which index suits range scans?",
        "reasoning": {"effort": "medium"},
        "max_output_tokens": 500,
    }
    headers = {"x-sim-ttfb-ms": "0", "x-sim-ttft-ms": "150"}
    first = _complete(sim, body, headers)
    second = _complete(sim, body | {"input": "And for point lookups?"}, headers)
    for result in (first, second):
        assert result.ok, result.error_detail
        record = sim.simulator.record(result.header("x-request-id") or "")
        assert record.api == "responses" and record.answer is not None
        assert result.thinking == record.answer.full_thinking and result.text == record.answer.full_text
        assert result.stop_reason == "end_turn" and result.response_id == f"resp_{record.answer.id}"
        assert result.usage is not None and result.usage.reasoning_tokens == 24
        assert result.usage.output_tokens == record.answer.output_tokens
        assert result.ttft_ms is not None and result.ttfb_ms is not None
        assert 100 < result.ttft_ms - result.ttfb_ms < 300  # the reasoning delta, sent at the injected TTFT
    assert first.usage is not None and second.usage is not None
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens > 0 and second.usage.cache_read_input_tokens % 128 == 0


def test_provider_collects_function_calls_and_max_tokens_is_a_stop_reason(sim: RunningSimulator) -> None:
    tools = {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "name": "get_weather"}}
    called = _complete(sim, {"model": "gpt-5", "input": "Weather in Oslo?", **tools}, {})
    assert called.ok and called.stop_reason == "tool_use"
    (call,) = called.tool_calls
    assert call.name == "get_weather" and call.input is not None and set(call.input) == {"city"}
    cut = _complete(sim, {"model": "gpt-5", "input": "Tell me a story", "max_output_tokens": 5}, {})
    assert cut.ok and cut.stop_reason == "max_tokens" and cut.usage is not None
