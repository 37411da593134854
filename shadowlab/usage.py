"""One token-usage object for every API (DESIGN §3), the input of every cost computation (DESIGN §6), the
one estimate of a request's input tokens before it is sent (budgets and rate limits hold on it), and the
estimate ingest stores beside a production answer that came without usage (`estimate_usage`).

Each API's module in `shadowlab.apis` parses its usage objects into `Usage`.

Token classes never overlap, except the two documented breakdowns:
- input side: `input_tokens` (uncached) + `cache_creation_input_tokens` + `cache_read_input_tokens`
  = `total_input_tokens`; `cache_creation_1h_input_tokens` is the part of the cache writes with a 1-hour TTL.
- output side: `output_tokens` is everything billed as output, reasoning included (both APIs bill reasoning
  as output); `reasoning_tokens` is the part of it spent on reasoning. Price `output_tokens` only, never
  `output_tokens + reasoning_tokens`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

from pydantic import BaseModel

from shadowlab.errors import ShadowlabError

__all__ = ["Usage", "UsageError", "UsageEstimate", "estimate_input_tokens", "estimate_usage", "token_count"]

# Real tokenizers average 3.5-4 characters per token; 2 over-estimates on purpose, so that what is reserved
# (money, tokens per minute) before a call is never less than what the call uses.
_CHARS_PER_TOKEN_FLOOR = 2
_OVERHEAD_TOKENS = 16  # message framing the provider adds around the prompt
ESTIMATE_METHOD = "upper_bound_2_chars_per_token"


class UsageError(ShadowlabError, ValueError):
    """A usage object that does not add up or has a count of the wrong type; names the field."""

    def __init__(self, field: str, expected: str, found: str) -> None:
        self.field, self.expected, self.found = field, expected, found
        super().__init__(f"usage.{field}: expected {expected}, found {found}")


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call by billing class (see the module docstring for how they add up)."""

    input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int | None = None
    cache_creation_1h_input_tokens: int = 0

    def __post_init__(self) -> None:
        for name in _COUNTS:  # not `fields(self)`: it builds its tuple at every call (a Usage per model call)
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise UsageError(name, "a count (int >= 0)", repr(value))
        if self.reasoning_tokens is not None and self.reasoning_tokens > self.output_tokens:
            raise UsageError(
                "reasoning_tokens",
                f"at most output_tokens ({self.output_tokens})",
                str(self.reasoning_tokens),
            )
        if self.cache_creation_1h_input_tokens > self.cache_creation_input_tokens:
            raise UsageError(
                "cache_creation_1h_input_tokens",
                f"at most cache_creation_input_tokens ({self.cache_creation_input_tokens})",
                str(self.cache_creation_1h_input_tokens),
            )

    @property
    def total_input_tokens(self) -> int:
        """Every input token: uncached + cache writes + cache reads."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


_COUNTS = tuple(f.name for f in fields(Usage))


def token_count(value: Any, field: str) -> int:
    """`value` when it is a count (int >= 0); UsageError naming `field` when not."""
    if type(value) is not int or value < 0:
        raise UsageError(field, "a count (int >= 0)", "nothing" if value is None else repr(value))
    return value


def estimate_input_tokens(*parts: object) -> int:
    """An upper estimate of the input tokens of a prompt made of `parts`: texts, pydantic models (the internal
    request or its messages and tools) or JSON bodies, each counted by its compact JSON size."""
    return math.ceil(sum(_chars(part) for part in parts) / _CHARS_PER_TOKEN_FLOOR) + _OVERHEAD_TOKENS


def _chars(part: object) -> int:
    if part is None:
        return 0
    if isinstance(part, str):
        return len(part)
    if isinstance(part, BaseModel):
        return len(part.model_dump_json())
    return len(json.dumps(part, separators=(",", ":")))


@dataclass(frozen=True, slots=True)
class UsageEstimate:
    """Upper estimates of one call's tokens, made from its texts because the API reported no usage: stored
    as `response.usage_estimate` with its `method`, never as (or in) reported usage."""

    input_tokens: int
    output_tokens: int | None  # None: the answer itself was not captured (no text, no tool calls)
    method: str = ESTIMATE_METHOD


def estimate_usage(request_body: object, *answer: object) -> UsageEstimate:
    """Input tokens of `request_body` as `estimate_input_tokens` counts them; output tokens of the `answer`'s
    parts (its text, its tool calls; None ones are not captured) at the same 2 characters per token."""
    parts = [part for part in answer if part is not None]
    output = math.ceil(sum(map(_chars, parts)) / _CHARS_PER_TOKEN_FLOOR) if parts else None
    return UsageEstimate(estimate_input_tokens(request_body), output)
