"""Hypothesis strategies for Anthropic Messages bodies: mostly valid, now and then any JSON in a field."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# A body of the common shape: text, tool_use and tool_result blocks, a custom tool, an unknown key.
COMMON: dict[str, Any] = {
    "model": "claude-sonnet-4",
    "max_tokens": 512,
    "system": "You are the support assistant of ACME.",
    "temperature": 1,
    "metadata": {"user_id": "u1"},
    "service_tier": "auto",  # unknown to the model: kept, noted in `untranslated`, not part of the prompt
    "messages": [
        {"role": "user", "content": "Hello, where is my order?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look.", "cache_control": {"type": "ephemeral"}},
                {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"id": "7", "n": [1, 2.5, None]}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "shipped"},
                {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "a"}]},
                {"type": "tool_result", "tool_use_id": "t3", "is_error": True},
                {"type": "text", "text": "Thanks"},
            ],
        },
    ],
    "tools": [{"name": "lookup", "description": "Find an order", "input_schema": {"type": "object"}}],
}

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, one time in 12 anything (a wrong type, null, a float for an int...)."""
    return st.integers(0, 11).flatmap(lambda k: ANY_JSON if k == 0 else valid)


_TEXT = st.fixed_dictionaries({"type": st.just("text"), "text": maybe(st.text(max_size=8))})
_BLOCK = st.one_of(
    _TEXT,
    st.fixed_dictionaries(
        {"type": st.just("tool_use"), "id": maybe(st.just("t")), "name": maybe(st.just("f")),
         "input": maybe(st.dictionaries(st.text(max_size=3), ANY_JSON, max_size=3))},
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": maybe(st.just("t"))},
        optional={"content": maybe(st.text(max_size=5) | st.lists(_TEXT, max_size=2)),
                  "is_error": maybe(st.booleans() | st.none())},
    ),
    st.fixed_dictionaries({"type": maybe(st.sampled_from(["image", "thinking", "x"]))}),
)  # fmt: skip
_MESSAGE = st.fixed_dictionaries(
    {"role": maybe(st.sampled_from(["user", "assistant", "system"])),
     "content": maybe(st.text(max_size=8) | st.lists(maybe(_BLOCK), max_size=3))},
    optional={"name": st.text(max_size=3)},
)  # fmt: skip
MESSAGES_BODY = st.fixed_dictionaries(
    {"model": maybe(st.just("m")), "max_tokens": maybe(st.integers(1, 10)),
     "messages": maybe(st.lists(maybe(_MESSAGE), max_size=3))},
    optional={
        "system": maybe(st.none() | st.text(max_size=5) | st.lists(_TEXT, max_size=2)),
        "temperature": maybe(st.none() | st.floats(0, 2) | st.integers(0, 2)),
        "top_p": maybe(st.floats(0, 1)), "top_k": maybe(st.integers(0, 5)),
        "stop_sequences": maybe(st.lists(st.text(max_size=3), max_size=2)),
        "stream": maybe(st.booleans()), "metadata": maybe(st.dictionaries(st.text(max_size=3), ANY_JSON)),
        "tools": maybe(st.lists(maybe(st.fixed_dictionaries(
            {"name": maybe(st.just("f")), "input_schema": maybe(st.just({"type": "object"}))},
            optional={"description": maybe(st.text(max_size=3)), "type": maybe(st.just("custom"))},
        )), max_size=2)),
        "tool_choice": st.none(), "extra_field": ANY_JSON,
    },
)  # fmt: skip
