"""Both request shapes normalise into one internal request; what cannot be carried over is listed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shadowlab.apis import normalize_request, normalize_request_body
from shadowlab.apis.internal import (
    DocumentBlock,
    ImageBlock,
    Message,
    NormalizedRequest,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from shadowlab.capture import CaptureError, parse_capture_bytes

DATA = Path(__file__).parent / "data"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER_SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
SIGNATURE_START = "ErgDCkgIChABGAIqQC/Ccv8GC+5VfcMEiq78XmpU2Ef2cT+96pHK"


def body(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return loaded


def anthropic(request: dict[str, Any]) -> NormalizedRequest:
    return normalize_request_body("anthropic.messages", request)


def openai(request: dict[str, Any]) -> NormalizedRequest:
    return normalize_request_body("openai.chat", request)


def user(*blocks: Any) -> Message:
    return Message(role="user", content=blocks)


def assistant(*blocks: Any) -> Message:
    return Message(role="assistant", content=blocks)


def test_anthropic_images_base64_and_url() -> None:
    normalized = anthropic(body("anthropic_vision"))
    assert normalized.messages == (
        user(
            TextBlock(text="Image 1:"),
            ImageBlock(media_type="image/png", data=PNG),
            TextBlock(text="Image 2:"),
            ImageBlock(
                url="https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"
            ),
            TextBlock(text="How are these images different?"),
        ),
    )
    assert (normalized.model, normalized.max_output_tokens, normalized.system) == (
        "claude-sonnet-4-5",
        1024,
        None,
    )
    assert normalized.untranslated == ()


def test_anthropic_tool_use_and_tool_result_turn() -> None:
    normalized = anthropic(body("anthropic_tool_use"))
    call_id = "toolu_01A09q90qw90lq917835lq9"
    assert normalized.messages == (
        user(TextBlock(text="What is the weather like in San Francisco?")),
        assistant(
            TextBlock(
                text="<thinking>I need to use get_weather, and the user wants SF, which is likely "
                "San Francisco, CA.</thinking>"
            ),
            ToolUseBlock(
                id=call_id, name="get_weather", input={"location": "San Francisco, CA", "unit": "celsius"}
            ),
        ),
        user(ToolResultBlock(tool_use_id=call_id, content=(TextBlock(text="15 degrees"),))),
    )
    [tool] = normalized.tools
    assert (tool.name, tool.description) == ("get_weather", "Get the current weather in a given location")
    assert tool.input_schema["required"] == ["location"] and normalized.tool_choice is None


def test_anthropic_extended_thinking_keeps_the_signature() -> None:
    normalized = anthropic(body("anthropic_thinking_tools"))
    thinking, tool_use = normalized.messages[1].content
    assert isinstance(thinking, ThinkingBlock) and thinking.signature is not None
    assert thinking.signature.startswith(SIGNATURE_START) and thinking.text.startswith("The user is asking")
    assert tool_use == ToolUseBlock(
        id="toolu_01CswdEQBMshySk6Y9DFKrfq", name="get_weather", input={"location": "Paris"}
    )
    assert normalized.tools == (
        ToolSpec(
            name="get_weather", description="Get current weather for a location", input_schema=WEATHER_SCHEMA
        ),
    )
    assert (normalized.thinking_budget_tokens, normalized.max_output_tokens) == (10000, 16000)
    assert normalized.messages[2] == user(
        ToolResultBlock(
            tool_use_id="toolu_01CswdEQBMshySk6Y9DFKrfq",
            content=(TextBlock(text="Current temperature: 88°F"),),
        )
    )


def test_anthropic_system_blocks_are_joined_and_cache_control_counted() -> None:
    normalized = anthropic(body("anthropic_prompt_caching"))
    assert normalized.system == (
        "You are an AI assistant tasked with analyzing literary works. Your goal is to provide insightful "
        "commentary on themes, characters, and writing style.\n"
        "\n\n<the entire contents of 'Pride and Prejudice'>"
    )
    assert normalized.untranslated == ("cache_control marker",)


def test_anthropic_parameters_choices_and_dropped_parts() -> None:
    request = body("anthropic_tool_use") | {
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["\n\nHuman:"],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"},
        "stream": True,
        "service_tier": "auto",
    }
    request["tools"] = [
        request["tools"][0] | {"cache_control": {"type": "ephemeral"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    ]
    request["messages"][0]["content"] = [
        {
            "type": "text",
            "text": "What is the weather like in San Francisco?",
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "Grass is green."},
            "title": "facts",
            "citations": {"enabled": True},
        },
        {"type": "document", "source": {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}},
        {"type": "container_upload", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"},
    ]
    request["messages"][1]["content"].insert(
        0, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}
    )
    normalized = anthropic(request)
    assert (normalized.temperature, normalized.top_p, normalized.top_k) == (0.2, 0.9, 40)
    assert normalized.stop_sequences == ("\n\nHuman:",)
    assert normalized.tool_choice == ToolChoice(type="tool", name="get_weather")
    assert normalized.parallel_tool_calls is False
    assert [t.name for t in normalized.tools] == ["get_weather"]
    assert normalized.messages[0].content == (
        TextBlock(text="What is the weather like in San Francisco?"),
        DocumentBlock(media_type="text/plain", text="Grass is green.", title="facts"),
    )
    assert normalized.messages[1].content[0] == ThinkingBlock(
        text="", redacted_data="EmwKAhgBEgy3va3pzix/LafPsn4a"
    )
    assert normalized.untranslated == (  # sorted, counted
        "cache_control marker x2",
        "content block container_upload",
        "document block.citations",
        "document source file",
        "request.service_tier",
        "server tool web_search_20250305",
    )


def test_openai_images_url_and_data_url() -> None:
    normalized = openai(body("openai_vision"))
    assert normalized.messages == (
        user(
            TextBlock(text="What's in this image?"),
            ImageBlock(
                url="https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/"
                "Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg"
            ),
            ImageBlock(media_type="image/png", data=PNG),
        ),
    )
    assert normalized.max_output_tokens == 300 and normalized.untranslated == ("image detail=high",)


def test_openai_tool_calls_and_tool_messages() -> None:
    normalized = openai(body("openai_tools"))
    assert normalized.system == "You are a helpful assistant."
    assert normalized.messages == (
        user(TextBlock(text="What is the weather like in Paris today? And in Bogotá?")),
        assistant(
            ToolUseBlock(id="call_12345xyz", name="get_weather", input={"location": "Paris, France"}),
            ToolUseBlock(id="call_67890abc", name="get_weather", input={"location": "Bogotá, Colombia"}),
        ),
        user(  # consecutive tool messages become one user turn
            ToolResultBlock(tool_use_id="call_12345xyz", content=(TextBlock(text="15°C"),)),
            ToolResultBlock(tool_use_id="call_67890abc", content=(TextBlock(text="18°C"),)),
        ),
    )
    [tool] = normalized.tools
    assert tool.name == "get_weather" and tool.input_schema["additionalProperties"] is False
    assert normalized.tool_choice == ToolChoice(type="auto")
    assert normalized.untranslated == ("function.strict",)


def test_openai_reasoning_request_with_developer_message() -> None:
    normalized = openai(body("openai_reasoning"))
    assert (normalized.system, normalized.reasoning_effort, normalized.max_output_tokens) == (
        "Formatting re-enabled",
        "medium",
        25000,
    )
    assert len(normalized.messages) == 1 and normalized.messages[0].role == "user"
    assert normalized.untranslated == ()


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("auto", ToolChoice(type="auto")),
        ("none", ToolChoice(type="none")),
        ("required", ToolChoice(type="any")),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            ToolChoice(type="tool", name="get_weather"),
        ),
    ],
)
def test_openai_tool_choice(tool_choice: Any, expected: ToolChoice) -> None:
    assert openai(body("openai_tools") | {"tool_choice": tool_choice}).tool_choice == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 200}, 200),
        ({"max_tokens": 100, "max_completion_tokens": 200}, 200),
        ({}, None),
    ],
)
def test_openai_max_output_tokens_prefers_max_completion_tokens(
    fields: dict[str, Any], expected: int | None
) -> None:
    request = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Hi"}]} | fields
    assert openai(request).max_output_tokens == expected


def test_openai_sampling_stop_and_what_is_dropped() -> None:
    request = {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "name": "alice",
                "content": [
                    {"type": "text", "text": "Transcribe and summarise."},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {
                        "type": "file",
                        "file": {
                            "filename": "draconomicon.pdf",
                            "file_data": "data:application/pdf;base64,JVBER",
                        },
                    },
                ],
            },
            {"role": "assistant", "content": "Done.", "refusal": None},
            {"role": "developer", "content": "Now in French."},
        ],
        "temperature": 0.7,
        "top_p": 1,
        "stop": "\n\n",
        "n": 3,
        "seed": 7,
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    normalized = openai(request)
    assert normalized.system == "Be brief.\n\nNow in French."
    assert normalized.messages == (
        user(
            TextBlock(text="Transcribe and summarise."),
            DocumentBlock(media_type="application/pdf", data="JVBER", title="draconomicon.pdf"),
        ),
        assistant(TextBlock(text="Done.")),
    )
    assert (normalized.temperature, normalized.top_p, normalized.stop_sequences) == (0.7, 1.0, ("\n\n",))
    assert normalized.parallel_tool_calls is False and normalized.top_k is None
    assert normalized.untranslated == (
        "content part input_audio",
        "message name",
        "n=3 (one choice replayed)",
        "request.response_format",
        "request.seed",
        "system message moved to the start",
    )


def test_invalid_tool_arguments_are_refused_with_the_field() -> None:
    request = body("openai_tools")
    request["messages"][2]["tool_calls"][0]["function"]["arguments"] = "{'location': 'Paris'}"
    with pytest.raises(CaptureError) as caught:
        openai(request)
    assert (caught.value.code, caught.value.field) == (
        "invalid_value",
        "request.messages[2].tool_calls[0].function.arguments",
    )
    assert "JSON object" in caught.value.expected


def test_empty_tool_arguments_mean_no_arguments() -> None:
    request = body("openai_tools")
    request["messages"][2]["tool_calls"][0]["function"]["arguments"] = ""
    assert openai(request).messages[1].content[0] == ToolUseBlock(
        id="call_12345xyz", name="get_weather", input={}
    )


def test_a_body_of_the_wrong_shape_is_a_capture_error() -> None:
    with pytest.raises(CaptureError) as caught:
        anthropic(
            {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": [{}]}]}
        )
    assert (caught.value.code, caught.value.field) == ("missing_field", "request.messages[0].content[0].type")


def test_normalize_request_takes_a_parsed_capture() -> None:
    raw = json.dumps(
        {
            "schema_version": 1,
            "request_id": "r",
            "captured_at": "2025-01-01T00:00:00Z",
            "source": {"service": "s"},
            "api": "openai.chat",
            "request": body("openai_reasoning"),
        }
    ).encode()
    assert normalize_request(parse_capture_bytes(raw)) == openai(body("openai_reasoning"))


def test_normalized_requests_are_frozen_and_serialisable() -> None:
    normalized = anthropic(body("anthropic_thinking_tools"))
    with pytest.raises(ValueError, match="frozen"):
        normalized.model = "other"  # type: ignore[misc]
    assert NormalizedRequest.model_validate_json(normalized.model_dump_json()) == normalized
