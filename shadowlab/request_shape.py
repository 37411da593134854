"""What the analysis cuts segments on that only the request body knows: prompt length and user turn.

Ingest stores both as columns of `captured_requests` (migration 0006 backfills older rows with these same
functions), so the analysis reads plain integers instead of every request's JSON body.
"""

from __future__ import annotations

from typing import Any

__all__ = ["prompt_chars", "user_turn"]


def _text_length(content: Any) -> int:
    """Characters of text in a message content: a string or a list of blocks with `text`."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(_text_length(b.get("text") or b.get("content")) for b in content if isinstance(b, dict))
    return 0


def _messages(body: Any) -> list[dict[str, Any]]:
    messages = body.get("messages") if isinstance(body, dict) else None
    return [m for m in messages or [] if isinstance(m, dict)]


def prompt_chars(body: Any) -> int:
    """Characters of prompt text in a request body: the system prompt and every message."""
    system = body.get("system") if isinstance(body, dict) else None
    return _text_length(system) + sum(_text_length(m.get("content")) for m in _messages(body))


def user_turn(body: Any) -> int:
    """Which user turn of its conversation a request is: its user messages, at least 1."""
    return max(sum(1 for m in _messages(body) if m.get("role") == "user"), 1)
