"""What both providers accumulate while a stream arrives, with its timing on a monotonic clock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from shadowlab.providers.base import ErrorCode, ProviderResult, ToolCall
from shadowlab.usage import Usage

__all__ = ["StreamState", "parse_arguments"]


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """Tool-call arguments as an object; None when the model produced something else."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class StreamState:
    """Text, thinking, stop reason, usage and times of one call as it streams in. Times are read from `clock`
    (monotonic seconds); `wire_timing` stamps them as the bytes move, the parse stamps what it did not."""

    def __init__(
        self,
        provider: str,
        model: str,
        untranslated: tuple[str, ...],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.provider, self.model, self.untranslated = provider, model, untranslated
        self.clock = clock
        self._texts: list[str] = []
        self._thinking: list[str] = []
        self.tool_calls: tuple[ToolCall, ...] = ()
        self.stop_reason: str | None = None
        self.usage: Usage | None = None
        self.response_id: str | None = None
        self._start = 0.0
        self.ttfb_ms: float | None = None
        self.ttft_ms: float | None = None
        self.ttlt_ms: float | None = None
        self.status_code: int | None = None
        self.response_headers: tuple[tuple[str, str], ...] = ()
        self.error: tuple[ErrorCode, str, int | None, float | None] | None = None

    def _elapsed_ms(self, at: float | None = None) -> float:
        return ((self.clock() if at is None else at) - self._start) * 1000

    def begin(self) -> None:
        self._start = self.clock()

    def sent(self) -> None:
        """The request is on an established connection: times count from here (building it, waiting for a
        connection and connecting are ours, not the provider's)."""
        self._start = self.clock()

    def headers(self, items: Iterable[tuple[str, str]], status: int) -> None:
        self.status_code = status
        self.response_headers = tuple((k.lower(), v) for k, v in items)

    def first_byte(self, at: float | None = None) -> None:
        """The first event (first SSE data line) arrived, at `at` on the clock (now when not given)."""
        if self.ttfb_ms is None:
            self.ttfb_ms = self._elapsed_ms(at)

    def first_token(self, at: float | None = None) -> None:
        """The first text or thinking delta arrived, at `at` on the clock (now when not given)."""
        if self.ttft_ms is None:
            self.ttft_ms = self._elapsed_ms(at)

    def add_text(self, text: str) -> None:
        if text:
            self.first_token()
            self._texts.append(text)

    def add_thinking(self, text: str) -> None:
        if text:
            self.first_token()
            self._thinking.append(text)

    def end(self) -> None:
        self.ttlt_ms = self._elapsed_ms()

    def fail(
        self, code: ErrorCode, detail: str, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        self.error = (code, detail, status, retry_after_s)
        self.ttlt_ms = self._elapsed_ms()

    def timed_out(self, limit_s: float, cause: str) -> None:
        """A read or connect timeout, classified by how far the call got (the same for every provider and SDK
        version, whatever exception type wraps it): `stall` once the response head arrived (the stream
        stopped), `timeout` before it (no answer at all)."""
        if self.status_code is not None:
            self.fail("stall", f"the stream stopped: no data within {limit_s:g} s ({cause})")
        else:
            self.fail("timeout", f"no response head within {limit_s:g} s ({cause})")

    def result(self) -> ProviderResult:
        code, detail, status, retry_after = self.error or (None, None, self.status_code, None)
        text = "".join(self._texts)
        thinking = "".join(self._thinking)
        return ProviderResult(
            provider=self.provider,
            model=self.model,
            text=text,
            thinking=thinking,
            tool_calls=self.tool_calls,
            stop_reason=self.stop_reason,
            usage=self.usage,
            ttfb_ms=self.ttfb_ms,
            ttft_ms=self.ttft_ms,
            ttlt_ms=self.ttlt_ms,
            error_code=code,
            error_detail=detail,
            status_code=status,
            retry_after_s=retry_after,
            partial=code is not None and bool(text or thinking or self.tool_calls),
            untranslated=self.untranslated,
            response_id=self.response_id,
            response_headers=self.response_headers,
        )
