"""Usage objects of OpenAI's APIs, chat completions and Responses: the same counts under two sets of names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shadowlab.usage import Usage, UsageError, token_count

__all__ = ["openai_usage"]


def openai_usage(usage: Mapping[str, Any], *, input_field: str, output_field: str) -> Usage:
    """Usage of an OpenAI API whose input count (`input_field`) includes cached tokens and cache writes (both
    in `<input_field>_details`) and whose output count includes reasoning (`<output_field>_details`)."""
    prompt = token_count(usage.get(input_field), input_field)
    in_details = f"{input_field}_details"
    details = _details(usage, in_details)
    cached = token_count(details.get("cached_tokens") or 0, f"{in_details}.cached_tokens")
    written = token_count(details.get("cache_write_tokens") or 0, f"{in_details}.cache_write_tokens")
    if cached + written > prompt:
        expected = f"cached + cache-write tokens at most {input_field} ({prompt})"
        raise UsageError(f"{in_details}.cached_tokens", expected, str(cached + written))
    out_details = f"{output_field}_details"
    reasoning = _details(usage, out_details).get("reasoning_tokens")
    reasoning_field = f"{out_details}.reasoning_tokens"
    return Usage(
        input_tokens=prompt - cached - written,
        cache_creation_input_tokens=written,
        cache_read_input_tokens=cached,
        output_tokens=token_count(usage.get(output_field), output_field),
        reasoning_tokens=None if reasoning is None else token_count(reasoning, reasoning_field),
    )


def _details(usage: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    details = usage.get(field)
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise UsageError(field, "an object", type(details).__name__)
    return details
