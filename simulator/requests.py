"""What the simulator needs from a request body of either API: prompt size, tools, limits, cache prefix.

Works on the raw JSON (no model validation) so the server stays fast; missing required fields are refused
the way the real APIs refuse them, with a 400 naming the field.

This is the fake server's reading of a body, not shadowlab's: `shadowlab.apis` (one module per API) validates
strictly and normalises for replay and analysis, while a server accepts what the real API accepts and needs
only sizes, tools and its cache prefix. So a new API shape gets its view here and its endpoint beside
`anthropic_api.py` / `openai_api.py` / `openai_responses_api.py` (routed in `routes.py`), besides its module
in `shadowlab.apis`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "InvalidRequestError",
    "RequestView",
    "count_tokens",
    "view_anthropic",
    "view_openai",
    "view_responses",
]

# ~4 characters per token for text; images are billed by size, a flat count is close enough here.
_CHARS_PER_TOKEN = 4
_IMAGE_TOKENS = 800


class InvalidRequestError(Exception):
    """The body lacks something the API requires; the message is the API's 400 message."""


@dataclass(frozen=True)
class RequestView:
    api: str
    model: str
    max_tokens: int
    prompt_words: tuple[str, ...]
    input_tokens: int
    tools: tuple[tuple[str, dict[str, Any]], ...]
    tool_mode: str  # "auto", "any", "none" or "tool:<name>"
    after_tool_result: bool
    thinking: bool
    cache_prefix_tokens: (
        int  # tokens up to the last cache breakpoint (Anthropic) / all but the last turn (OpenAI)
    )
    cache_prefix_key: str
    stop_sequences: tuple[str, ...]


def count_tokens(text: str) -> int:
    return max(1, -(-len(text) // _CHARS_PER_TOKEN)) if text else 0


def _segment_tokens(node: Any) -> int:
    """Tokens of one system block, message or tool: its text, plus a flat count per image."""
    if isinstance(node, str):
        return count_tokens(node)
    if isinstance(node, list):
        return sum(_segment_tokens(item) for item in node)
    if isinstance(node, dict):
        if node.get("type") in ("image", "image_url", "input_image"):
            return _IMAGE_TOKENS
        return sum(_segment_tokens(v) for k, v in node.items() if k not in ("type", "cache_control")) + 1
    return 0


def _words(segments: list[Any]) -> tuple[str, ...]:
    text = json.dumps(segments, ensure_ascii=False)
    return tuple(w.strip('"{}[],:.\\').lower() for w in text.split() if w.isascii() and len(w) > 3)[:400]


def _require(body: Any, field: str, kind: type | tuple[type, ...], expected: str) -> Any:
    if not isinstance(body, dict):
        raise InvalidRequestError("body: expected a JSON object")
    value = body.get(field)
    if value is None:
        raise InvalidRequestError(f"{field}: Field required")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidRequestError(f"{field}: Input should be {expected}")
    return value


def _has_cache_control(node: Any) -> bool:
    return isinstance(node, dict) and isinstance(node.get("cache_control"), dict)


def view_anthropic(body: Any) -> RequestView:
    model = _require(body, "model", str, "a valid string")
    max_tokens = _require(body, "max_tokens", int, "a valid integer")
    messages = _require(body, "messages", list, "a valid list")
    if not messages:
        raise InvalidRequestError("messages: at least one message is required")
    # Cache order is tools → system → messages; the prefix ends at the last block with cache_control.
    system = body.get("system") or []
    segments: list[Any] = list(body.get("tools") or [])
    segments += system if isinstance(system, list) else [system]
    segments += messages
    total, prefix, breakpoint_at = 0, 0, -1
    for index, segment in enumerate(segments):
        total += _segment_tokens(segment)
        blocks = segment.get("content") if isinstance(segment, dict) and "role" in segment else [segment]
        if isinstance(blocks, list) and any(_has_cache_control(b) for b in blocks):
            prefix, breakpoint_at = total, index
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    content = last.get("content")
    after_tool = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    choice = body.get("tool_choice") or {}
    mode = choice.get("type", "auto") if isinstance(choice, dict) else "auto"
    if mode == "tool":
        mode = f"tool:{choice.get('name')}"
    thinking = body.get("thinking")
    return RequestView(
        api="anthropic",
        model=model,
        max_tokens=max_tokens,
        prompt_words=_words(segments),
        input_tokens=total,
        tools=tuple((t["name"], t.get("input_schema") or {}) for t in body.get("tools") or [] if "name" in t),
        tool_mode=mode,
        after_tool_result=after_tool,
        thinking=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
        cache_prefix_tokens=prefix,
        cache_prefix_key=json.dumps(segments[: breakpoint_at + 1], sort_keys=True)
        if breakpoint_at >= 0
        else "",
        stop_sequences=tuple(body.get("stop_sequences") or ()),
    )


def view_openai(body: Any) -> RequestView:
    model = _require(body, "model", str, "a valid string")
    messages = _require(body, "messages", list, "a valid list")
    if not messages:
        raise InvalidRequestError("messages: at least one message is required")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 4096
    tools = body.get("tools") or []
    segments: list[Any] = [*tools, *messages]
    total = sum(_segment_tokens(s) for s in segments)
    prefix = total - _segment_tokens(messages[-1])  # automatic caching: the prompt before the last turn
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        mode = f"tool:{(choice.get('function') or {}).get('name')}"
    else:
        mode = {"required": "any"}.get(str(choice), str(choice))
    stop = body.get("stop") or ()
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    return RequestView(
        api="openai",
        model=model,
        max_tokens=int(max_tokens),
        prompt_words=_words(segments),
        input_tokens=total,
        tools=tuple(
            (t["function"]["name"], t["function"].get("parameters") or {})
            for t in tools
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        ),
        tool_mode=mode,
        after_tool_result=last.get("role") == "tool",
        thinking=body.get("reasoning_effort") not in (None, "none", "minimal"),
        cache_prefix_tokens=prefix,
        cache_prefix_key=json.dumps(segments[:-1], sort_keys=True),
        stop_sequences=(stop,) if isinstance(stop, str) else tuple(stop),
    )


def view_responses(body: Any) -> RequestView:
    """The Responses API: `input` (a string or items), `instructions`, function tools at the top level."""
    model = _require(body, "model", str, "a valid string")
    items = _require(body, "input", (str, list), "a string or a list of items")
    if not items:
        raise InvalidRequestError("input: at least one item is required")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    segments: list[Any] = [body.get("instructions") or "", *tools, *items]
    total = sum(_segment_tokens(s) for s in segments)
    prefix = total - _segment_tokens(items[-1])  # automatic caching, as for chat completions
    choice = body.get("tool_choice", "auto")
    named = isinstance(choice, dict)
    mode = f"tool:{choice.get('name')}" if named else {"required": "any"}.get(choice, choice)
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    last = items[-1] if isinstance(items[-1], dict) else {}
    return RequestView(
        api="responses",
        model=model,
        max_tokens=int(body.get("max_output_tokens") or 4096),
        prompt_words=_words(segments),
        input_tokens=total,
        tools=tuple((t["name"], t.get("parameters") or {}) for t in tools if "name" in t),
        tool_mode=str(mode),
        after_tool_result=last.get("type") == "function_call_output",
        thinking=effort not in (None, "none", "minimal"),
        cache_prefix_tokens=prefix,
        cache_prefix_key=json.dumps(segments[:-1], sort_keys=True),
        stop_sequences=(),
    )
