"""Request translation, table-driven: Anthropic → OpenAI and back, tools, images, multi-turn tool use."""

from __future__ import annotations

from typing import Any

import pytest

from shadowlab.apis import normalize_request_body
from shadowlab.apis.anthropic import to_anthropic
from shadowlab.apis.openai_chat import to_openai

PNG = "iVBORw0KGgo="
TOOL = {
    "name": "weather",
    "description": "Weather by city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
OPENAI_TOOL = {
    "type": "function",
    "function": {"name": "weather", "description": "Weather by city", "parameters": TOOL["input_schema"]},
}
TOOL_CONVERSATION = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "t2", "name": "weather", "input": {"city": "Rome"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "18C"}]},
            {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "24C"}]},
        ],
    },
]
OPENAI_TOOL_CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": "Checking both.",
        "tool_calls": [
            {
                "id": "t1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "t2",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "t1", "content": "18C"},
    {"role": "tool", "tool_call_id": "t2", "content": "24C"},
]

# (name, Anthropic body, expected OpenAI body, expected dropped)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], tuple[str, ...]]] = [
    (
        "system, sampling, stop sequences",
        {
            "model": "m",
            "max_tokens": 100,
            "system": "Be brief.",
            "temperature": 0.3,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "messages": [{"role": "user", "content": "hi"}],
        },
        {
            "model": "m",
            "max_completion_tokens": 100,
            "temperature": 0.3,
            "top_p": 0.9,
            "stop": ["END"],
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        },
        (),
    ),
    (
        "image with text",
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        },
        {
            "model": "m",
            "max_completion_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        },
        (),
    ),
    (
        "tools, named tool choice, no parallel calls",
        {
            "model": "m",
            "max_tokens": 10,
            "tools": [TOOL],
            "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
            "messages": [{"role": "user", "content": "Paris?"}],
        },
        {
            "model": "m",
            "max_completion_tokens": 10,
            "tools": [OPENAI_TOOL],
            "parallel_tool_calls": False,
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "messages": [{"role": "user", "content": "Paris?"}],
        },
        (),
    ),
    (
        "multi-turn tool use",
        {
            "model": "m",
            "max_tokens": 10,
            "system": "Be brief.",
            "tools": [TOOL],
            "tool_choice": {"type": "auto"},
            "messages": TOOL_CONVERSATION,
        },
        {
            "model": "m",
            "max_completion_tokens": 10,
            "tools": [OPENAI_TOOL],
            "tool_choice": "auto",
            "messages": OPENAI_TOOL_CONVERSATION,
        },
        (),
    ),
    (
        "what OpenAI cannot carry: cache_control, thinking, top_k",
        {
            "model": "m",
            "max_tokens": 2000,
            "top_k": 5,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "system": [{"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "hi"}],
        },
        {
            "model": "m",
            "max_completion_tokens": 2000,
            "messages": [{"role": "system", "content": "Long context"}, {"role": "user", "content": "hi"}],
        },
        ("cache_control marker", "top_k=5", "thinking (budget 1024 tokens)"),
    ),
]


@pytest.mark.parametrize(
    ("name", "anthropic_body", "openai_body", "dropped"), CASES, ids=[c[0] for c in CASES]
)
def test_anthropic_to_openai(
    name: str, anthropic_body: dict[str, Any], openai_body: dict[str, Any], dropped: tuple[str, ...]
) -> None:
    translation = to_openai(normalize_request_body("anthropic.messages", anthropic_body))
    assert translation.body == openai_body
    assert translation.dropped == dropped


@pytest.mark.parametrize(
    ("name", "anthropic_body", "openai_body", "dropped"), CASES[:4], ids=[c[0] for c in CASES[:4]]
)
def test_openai_back_to_anthropic_restores_the_request(
    name: str, anthropic_body: dict[str, Any], openai_body: dict[str, Any], dropped: tuple[str, ...]
) -> None:
    back = to_anthropic(normalize_request_body("openai.chat", openai_body))
    assert back.dropped == ()
    assert back.body == _canonical_anthropic(anthropic_body)


def _canonical_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic body as translation writes it: string content as one text block."""
    out = dict(body)
    out["messages"] = [
        {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
        if isinstance(m["content"], str)
        else m
        for m in body["messages"]
    ]
    return out


@pytest.mark.parametrize(
    ("openai_body", "expected_anthropic", "dropped"),
    [
        (
            {
                "model": "gpt",
                "messages": [{"role": "user", "content": "hi"}],
                "temperature": 1.5,
                "reasoning_effort": "high",
            },
            {
                "model": "gpt",
                "max_tokens": 4096,
                "temperature": 1.0,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            },
            (
                "max_tokens missing: set to 4096",
                "temperature 1.5 clamped to 1 (Anthropic's maximum)",
                "reasoning_effort=high",
            ),
        ),
        (
            {
                "model": "gpt",
                "max_tokens": 50,
                "tool_choice": "required",
                "tools": [OPENAI_TOOL],
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
                    }
                ],
            },
            {
                "model": "gpt",
                "max_tokens": 50,
                "tools": [TOOL],
                "tool_choice": {"type": "any"},
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
                        ],
                    }
                ],
            },
            (),
        ),
    ],
)
def test_openai_to_anthropic(
    openai_body: dict[str, Any], expected_anthropic: dict[str, Any], dropped: tuple[str, ...]
) -> None:
    translation = to_anthropic(normalize_request_body("openai.chat", openai_body))
    assert translation.body == expected_anthropic
    assert translation.dropped == dropped


def test_the_arm_model_replaces_the_captured_one() -> None:
    request = normalize_request_body(
        "anthropic.messages", {"model": "a", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    )
    assert to_openai(request, model="gpt-4.1", max_tokens_field="max_tokens").body["model"] == "gpt-4.1"
    assert "max_tokens" in to_openai(request, max_tokens_field="max_tokens").body
    assert to_anthropic(request, model="claude-haiku-4-5").body["model"] == "claude-haiku-4-5"
