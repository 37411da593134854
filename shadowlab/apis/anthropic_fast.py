"""The prompt of an Anthropic Messages body read straight from its JSON, for the common shapes only.

What `prompt_fingerprint(normalize(validate(body)))` hashes (the normalised request dumped as JSON, without
model, API and what was dropped), built from the dict without pydantic: validating and normalising costs
ingest about 100 µs a capture, this about a tenth. It covers text, tool_use and tool_result blocks (string
or text-block content), a string or text-block system prompt, custom tools and the sampling fields, and
answers None for anything else (images, thinking, tool_choice, a value of a type the strict model
refuses, a float JSON writes with an exponent, ...), so the caller takes the pydantic path. A body it
answers for is one the strict model accepts, and the answer is the pydantic path's
(tests/shadowlab/test_anthropic_fast.py compares both).
"""

from __future__ import annotations

from typing import Any

from shadowlab.apis import anthropic_wire as wire

__all__ = ["prompt_of"]

_REQUEST_FIELDS = frozenset(wire.AnthropicMessagesRequest.model_fields)
# Declared fields this reader handles; any other declared field must be absent or null. Unknown fields are
# kept by the model and only noted in `untranslated` (not part of the prompt), so they are ignored here.
_HANDLED = frozenset({
    "model", "max_tokens", "messages", "system", "tools", "temperature", "top_p", "top_k", "stop_sequences",
    "metadata", "stream",
})  # fmt: skip
_UNHANDLED = _REQUEST_FIELDS - _HANDLED
_TEXT_FIELDS = frozenset(wire.AnthropicTextBlock.model_fields)
_TOOL_USE_FIELDS = frozenset(wire.AnthropicToolUseBlock.model_fields)
_TOOL_RESULT_REQUIRED = frozenset({"type", "tool_use_id"})
_TOOL_REQUIRED = frozenset({"name", "input_schema"})
_MESSAGE_FIELDS = frozenset(wire.AnthropicMessage.model_fields)
_ROLES = ("user", "assistant")
_EXACT_FLOAT = 2**53  # a larger integer given for a float may not survive the conversion exactly
_PLAIN_FLOATS = (1e-4, 1e16)  # `repr` writes floats outside this range with an exponent, orjson differently


class _Other(Exception):
    """Not one of the shapes read here: the caller validates and normalises with pydantic."""


def prompt_of(body: Any) -> dict[str, Any] | None:
    """The normalised prompt of a Messages body as `prompt_fingerprint` dumps it, or None when the body is
    not a common shape (then it may still be valid: ask pydantic)."""
    try:
        return _prompt(body)
    except _Other:
        return None


def _prompt(body: Any) -> dict[str, Any]:
    if type(body) is not dict or any(body.get(k) is not None for k in _UNHANDLED):
        raise _Other
    _str(body.get("model", 0))
    max_tokens = _int(body.get("max_tokens"))
    messages = body.get("messages")
    if type(messages) is not list:
        raise _Other
    stop = _optional(body.get("stop_sequences"), list)
    if stop is not None:
        for value in stop:
            _str(value)
    _optional(body.get("metadata"), dict)
    _optional(body.get("stream"), bool)
    top_k = body.get("top_k")
    return {
        "system": _system(body.get("system")),
        "messages": [_message(m) for m in messages],
        "tools": [_tool(t) for t in _optional(body.get("tools"), list) or ()],
        "tool_choice": None,
        "parallel_tool_calls": None,
        "temperature": _float(body.get("temperature")),
        "top_p": _float(body.get("top_p")),
        "top_k": None if top_k is None else _int(top_k),
        "stop_sequences": list(stop or ()),
        "max_output_tokens": max_tokens,
        "thinking_budget_tokens": None,
        "reasoning_effort": None,
    }


def _str(value: Any) -> str:
    if type(value) is not str:
        raise _Other
    return value


def _int(value: Any) -> int:
    if type(value) is not int:  # strict: not a bool, not a float
        raise _Other
    return value


def _float(value: Any) -> float | None:
    """A strict float field as dumped to JSON: an int becomes a float; inf, nan and floats JSON writes with an
    exponent are left to pydantic."""
    if value is None:
        return None
    if type(value) is int and -_EXACT_FLOAT <= value <= _EXACT_FLOAT:
        value = float(value)
    if type(value) is float and _plain_float(value):
        return value
    raise _Other


def _plain_float(value: float) -> bool:
    """Finite and written without an exponent, where `repr` and orjson write every float alike (the prompt is
    hashed as orjson writes it: `shadowlab.fingerprint`)."""
    return value == 0 or _PLAIN_FLOATS[0] <= abs(value) < _PLAIN_FLOATS[1]


def _optional(value: Any, kind: type) -> Any:
    if value is not None and type(value) is not kind:
        raise _Other
    return value


def _system(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if type(value) is list:
        return "\n\n".join(_text_block(block)["text"] for block in value)
    raise _Other


def _message(value: Any) -> dict[str, Any]:
    if type(value) is not dict or value.keys() != _MESSAGE_FIELDS or value["role"] not in _ROLES:
        raise _Other
    _str(value["role"])
    content = value["content"]
    if type(content) is str:
        return {"role": value["role"], "content": [{"type": "text", "text": content}]}
    if type(content) is not list:
        raise _Other
    return {"role": value["role"], "content": [_block(block) for block in content]}


def _block(value: Any) -> dict[str, Any]:
    kind = value.get("type") if type(value) is dict else None
    if kind == "text":
        return _text_block(value)
    if kind == "tool_use":
        _require(value, _TOOL_USE_FIELDS)
        if type(value["input"]) is not dict:
            raise _Other
        return {
            "type": "tool_use",
            "id": _str(value["id"]),
            "name": _str(value["name"]),
            "input": _json(value["input"]),
        }
    if kind == "tool_result":
        return _tool_result(value)
    raise _Other


def _text_block(value: Any) -> dict[str, Any]:
    if type(value) is not dict or value.get("type") != "text":
        raise _Other
    _require(value, _TEXT_FIELDS)
    return {"type": "text", "text": _str(value["text"])}


def _tool_result(value: dict[str, Any]) -> dict[str, Any]:
    _require(value, _TOOL_RESULT_REQUIRED)
    content = value.get("content", "")
    is_error = _optional(value.get("is_error"), bool)
    if type(content) is str:
        parts = [{"type": "text", "text": content}] if content != "" else []
    elif type(content) is list:
        parts = [_text_block(part) for part in content]
    else:
        raise _Other
    return {
        "type": "tool_result",
        "tool_use_id": _str(value["tool_use_id"]),
        "content": parts,
        "is_error": bool(is_error),
    }


def _tool(value: Any) -> dict[str, Any]:
    if type(value) is not dict or value.get("type") not in (None, "custom"):
        raise _Other  # a server tool (dropped by normalisation) or not an object
    _require(value, _TOOL_REQUIRED)
    if type(value["input_schema"]) is not dict:
        raise _Other
    description = value.get("description")
    return {
        "name": _str(value["name"]),
        "description": None if description is None else _str(description),
        "input_schema": _json(value["input_schema"]),
    }


def _require(value: dict[str, Any], fields: frozenset[str]) -> None:
    """The required fields present (a block's extra keys are kept by the model, and ignored here)."""
    if not fields <= value.keys():
        raise _Other


def _json(value: Any) -> Any:
    """`value` as pydantic dumps an `Any` to JSON: unchanged, unless it holds inf, nan or a float written with
    an exponent (then: pydantic)."""
    kind = type(value)
    if kind is dict:
        for item in value.values():
            _json(item)
    elif kind is list:
        for item in value:
            _json(item)
    elif kind is float:
        if not _plain_float(value):
            raise _Other
    elif kind not in (str, int, bool) and value is not None:
        raise _Other
    return value
