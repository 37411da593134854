"""The provider contract: one Protocol, one result type, one closed set of error codes (docs/providers.md),
and `StreamingProvider`, the base of the built-in providers (one `complete`: translate, then stream)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, get_args

from pydantic import SecretStr

from shadowlab.apis import Api, api_shape
from shadowlab.apis.internal import NormalizedRequest
from shadowlab.apis.openai_chat import MaxTokensField
from shadowlab.usage import Usage

__all__ = [
    "ERROR_CODES",
    "RETRYABLE_ERRORS",
    "ErrorCode",
    "Provider",
    "ProviderConfig",
    "ProviderResult",
    "StopReason",
    "StreamingProvider",
    "ToolCall",
    "error_code_for_status",
    "parse_retry_after",
]

ErrorCode = Literal[
    "rate_limited",  # 429; `retry_after_s` from the retry-after header
    "overloaded",  # 529 (Anthropic) or 503
    "server_error",  # any other 5xx
    "bad_request",  # 400, 413, 422: the provider refused the request; not worth retrying
    "auth",  # 401, 403
    "not_found",  # 404: unknown model or wrong base_url
    "timeout",  # no response head within the timeout, or 408
    "connection",  # connect failure, connection reset or closed before the stream ended
    "stall",  # the stream went silent for longer than the stall timeout
    "stream_error",  # an `error` event in a 200 stream
    "invalid_response",  # the body or an event could not be parsed
]
ERROR_CODES: tuple[ErrorCode, ...] = get_args(ErrorCode)
RETRYABLE_ERRORS: frozenset[ErrorCode] = frozenset(
    {"rate_limited", "overloaded", "server_error", "timeout", "connection", "stall", "stream_error"}
)
# Stop reasons in the Anthropic vocabulary, whichever API answered (OpenAI: stop→end_turn, length→max_tokens,
# tool_calls→tool_use, content_filter→refusal); anything else is kept as given.
StopReason = str


@dataclass(frozen=True)
class ProviderConfig:
    """How to reach one provider; the key is a SecretStr so it never lands in a log or repr."""

    base_url: str | None = None
    api_key: SecretStr | None = None
    connect_timeout_s: float = 10.0
    stall_timeout_s: float = 60.0  # longest silence allowed between stream events (also time to the head)
    timeout_s: float = 600.0  # whole call
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    max_connections: int = 1000
    # OpenAI-compatible only: which field carries max output tokens (older servers know only `max_tokens`)
    max_tokens_field: MaxTokensField = "max_completion_tokens"
    stream_usage: bool = True  # OpenAI-compatible only: ask for the usage chunk (`stream_options`)
    # An async transport of the provider's HTTP library (httpx for OpenAI-compatible, the Anthropic SDK's
    # own httpx flavour for Anthropic) to send through instead of the network: faults on cue in tests.
    transport: Any = None
    clock: Callable[[], float] = time.perf_counter  # monotonic seconds the times are read from (tests: fake)


@dataclass(frozen=True)
class ToolCall:
    """A tool call in an answer; `input` is None when the model's arguments were not a JSON object."""

    id: str
    name: str
    input: dict[str, Any] | None
    raw_arguments: str


@dataclass(frozen=True)
class ProviderResult:
    """One call's outcome. On error, what arrived before it is kept and `partial` says so. Times are ms on a
    monotonic clock from when the request was written to an established connection (pool wait and connect
    excluded), stamped as the raw bytes arrive
    (`wire_timing`): TTFB = first event, TTFT = first text or thinking delta, TTLT = end of the stream."""

    provider: str
    model: str
    text: str = ""
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: StopReason | None = None
    usage: Usage | None = None
    ttfb_ms: float | None = None
    ttft_ms: float | None = None
    ttlt_ms: float | None = None
    error_code: ErrorCode | None = None
    error_detail: str | None = None
    status_code: int | None = None
    retry_after_s: float | None = None
    partial: bool = False
    untranslated: tuple[str, ...] = ()
    response_id: str | None = None
    response_headers: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.error_code is None

    @property
    def retryable(self) -> bool:
        return self.error_code in RETRYABLE_ERRORS

    def header(self, name: str) -> str | None:
        """A response header (lower-case name), e.g. the simulator's `x-sim-injected-ttft-ms`."""
        return next((value for key, value in self.response_headers if key == name), None)

    @property
    def output_tokens_per_s(self) -> float | None:
        """Output speed after the first token."""
        if self.usage is None or self.ttft_ms is None or self.ttlt_ms is None or self.ttlt_ms <= self.ttft_ms:
            return None
        return self.usage.output_tokens / ((self.ttlt_ms - self.ttft_ms) / 1000)


class Provider(Protocol):
    """A model API. `complete` never raises for API or network failures: they come back as `error_code`."""

    name: str

    @property
    def api(self) -> Api:
        """The API shape it speaks (`shadowlab.apis`): a capture of that API is replayed as captured."""
        ...

    async def complete(
        self,
        request: NormalizedRequest,
        *,
        model: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProviderResult:
        """Stream one answer to `request` (its model unless `model` is given)."""
        ...

    async def complete_raw(
        self,
        body: Mapping[str, Any],
        *,
        untranslated: tuple[str, ...] = (),
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProviderResult:
        """Stream one answer to a body already in this provider's API (sent as given, streaming on)."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...


class StreamingProvider(ABC):
    """What every built-in provider shares: `complete` translates the request to the provider's API
    (`translate_options` for the API's options) and streams it with `complete_raw`."""

    name: str
    api: ClassVar[Api]

    def translate_options(self) -> dict[str, Any]:
        """Keyword options of this API's `translate` (e.g. which field carries max tokens)."""
        return {}

    async def complete(
        self,
        request: NormalizedRequest,
        *,
        model: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProviderResult:
        """Stream one answer to `request` (its model unless `model` is given), translated to this API."""
        translation = api_shape(self.api).translate(request, model=model, **self.translate_options())
        return await self.complete_raw(
            translation.body, untranslated=translation.dropped, extra_headers=extra_headers
        )

    @abstractmethod
    async def complete_raw(
        self,
        body: Mapping[str, Any],
        *,
        untranslated: tuple[str, ...] = (),
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProviderResult:
        """Stream one answer to a body already in this provider's API."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close connections."""


def error_code_for_status(status: int) -> ErrorCode:
    """The error code of an HTTP error status."""
    if status == 429:
        return "rate_limited"
    if status in (529, 503):
        return "overloaded"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    return "server_error" if status >= 500 else "bad_request"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `retry-after` header (seconds form; HTTP dates are rare from LLM APIs and ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
