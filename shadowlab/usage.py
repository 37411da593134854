"""One token-usage object for both APIs (DESIGN §3), the input of every cost computation (DESIGN §6).

Token classes never overlap, except the two documented breakdowns:
- input side: `input_tokens` (uncached) + `cache_creation_input_tokens` + `cache_read_input_tokens`
  = `total_input_tokens`; `cache_creation_1h_input_tokens` is the part of the cache writes with a 1-hour TTL.
- output side: `output_tokens` is everything billed as output, reasoning included (both APIs bill reasoning
  as output); `reasoning_tokens` is the part of it spent on reasoning. Price `output_tokens` only, never
  `output_tokens + reasoning_tokens`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from shadowlab.errors import ShadowlabError

if TYPE_CHECKING:
    from shadowlab.capture import Capture

# fmt: off
__all__ = [
    "AnthropicStreamUsage", "Usage", "UsageError", "usage_from_anthropic", "usage_from_anthropic_stream",
    "usage_from_capture", "usage_from_openai",
]
# fmt: on


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
        for name in (f.name for f in fields(self)):
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


# Usage field -> where Anthropic reports it (a path into the usage object).
_ANTHROPIC_PATHS: dict[str, tuple[str, ...]] = {
    "input_tokens": ("input_tokens",),
    "cache_creation_input_tokens": ("cache_creation_input_tokens",),
    "cache_read_input_tokens": ("cache_read_input_tokens",),
    "output_tokens": ("output_tokens",),
    "reasoning_tokens": ("output_tokens_details", "thinking_tokens"),
    "cache_creation_1h_input_tokens": ("cache_creation", "ephemeral_1h_input_tokens"),
}


def usage_from_anthropic(usage: Mapping[str, Any]) -> Usage:
    """Usage of a (non-streamed) Anthropic message: `input_tokens` there is already the uncached part."""
    counts = _anthropic_counts(usage)
    for required in ("input_tokens", "output_tokens"):
        if required not in counts:
            raise UsageError(required, "a count (int >= 0)", "nothing")
    return Usage(**counts)


class AnthropicStreamUsage:
    """Folds Anthropic stream events into one Usage.

    `message_start.message.usage` carries the input-side counts; every `message_delta.usage` carries
    cumulative counts that replace the earlier ones (never add to them). A delta may also carry input or
    cache counts (newer API versions): those replace too when present, and are kept when absent or null.
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._started = False

    def add(self, event: Mapping[str, Any]) -> None:
        """Take one SSE event (its JSON `data` as a dict); events without usage are ignored."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, Mapping) else None
            self._counts.update(_anthropic_counts(usage, "message.usage"))
            self._started = True
        elif kind == "message_delta" and event.get("usage") is not None:
            self._counts.update(_anthropic_counts(event["usage"]))

    @property
    def usage(self) -> Usage:
        """The usage so far; output_tokens is the last cumulative count seen."""
        if not self._started:
            raise UsageError("message.usage", "a message_start event first", "no message_start")
        return Usage(**self._counts)


def usage_from_anthropic_stream(events: Iterable[Mapping[str, Any]]) -> Usage:
    """Usage of a whole Anthropic stream (see AnthropicStreamUsage)."""
    accumulator = AnthropicStreamUsage()
    for event in events:
        accumulator.add(event)
    return accumulator.usage


def _anthropic_counts(usage: Any, where: str = "") -> dict[str, int]:
    """The counts present (not null) in an Anthropic usage object."""
    if not isinstance(usage, Mapping):
        raise UsageError(where or "(usage)", "an object", type(usage).__name__)
    counts: dict[str, int] = {}
    for field, path in _ANTHROPIC_PATHS.items():
        node: Any = usage
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is not None:
            counts[field] = _count(node, ".".join(path))
    return counts


def usage_from_openai(usage: Mapping[str, Any]) -> Usage:
    """Usage of an OpenAI chat completion.

    `prompt_tokens` includes cached tokens (and cache writes, reported by newer models as
    `cache_write_tokens`): uncached input = prompt_tokens - cached_tokens - cache_write_tokens.
    `completion_tokens` includes reasoning tokens, so `reasoning_tokens` is a breakdown of `output_tokens`.
    """
    prompt = _count(usage.get("prompt_tokens"), "prompt_tokens")
    details = _details(usage, "prompt_tokens_details")
    cached = _count(details.get("cached_tokens") or 0, "prompt_tokens_details.cached_tokens")
    written = _count(details.get("cache_write_tokens") or 0, "prompt_tokens_details.cache_write_tokens")
    if cached + written > prompt:
        expected = f"cached + cache-write tokens at most prompt_tokens ({prompt})"
        raise UsageError("prompt_tokens_details.cached_tokens", expected, str(cached + written))
    reasoning = _details(usage, "completion_tokens_details").get("reasoning_tokens")
    reasoning_field = "completion_tokens_details.reasoning_tokens"
    return Usage(
        input_tokens=prompt - cached - written,
        cache_creation_input_tokens=written,
        cache_read_input_tokens=cached,
        output_tokens=_count(usage.get("completion_tokens"), "completion_tokens"),
        reasoning_tokens=None if reasoning is None else _count(reasoning, reasoning_field),
    )


def usage_from_capture(capture: Capture) -> Usage | None:
    """Usage of the production response of a capture; None when it has no response or no usage."""
    if capture.response is None or capture.response.usage is None:
        return None
    if capture.api == "anthropic.messages":
        return usage_from_anthropic(capture.response.usage)
    return usage_from_openai(capture.response.usage)


def _details(usage: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    details = usage.get(field)
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise UsageError(field, "an object", type(details).__name__)
    return details


def _count(value: Any, field: str) -> int:
    if type(value) is not int or value < 0:
        raise UsageError(field, "a count (int >= 0)", "nothing" if value is None else repr(value))
    return value
