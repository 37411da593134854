"""One mirrored call: timing, request snapshot, stream observation, hand-off to the sink.

Everything here runs on the production call's path, so it does as little as it can (the response is
read later, on the sink's worker thread) and never lets an error of its own reach the caller.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from shadowlab_tee import extract, raw
from shadowlab_tee.record import (
    ABANDONED_ERROR,
    ApiName,
    PendingCapture,
    Source,
    check_request_id,
    error_info,
    now,
    snapshot_request,
)
from shadowlab_tee.sink import Sink

_NO_ADD: Final[Mapping[str, Any]] = {}


class TeeUnsupportedError(RuntimeError):
    """The installed SDK does not have the shape the tee relies on (the call itself still goes through)."""


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """How to read one API's responses and stream events."""

    api: ApiName
    from_result: Callable[[Any], dict[str, Any]]
    from_events: Callable[[Any], dict[str, Any]]
    first_token: Callable[[Any], bool]
    terminal: Callable[[Any], bool]


ANTHROPIC: Final = ApiSpec(
    "anthropic.messages",
    extract.anthropic_message,
    extract.anthropic_events,
    extract.anthropic_first_token,
    extract.anthropic_terminal,
)
OPENAI: Final = ApiSpec(
    "openai.chat",
    extract.openai_completion,
    extract.openai_chunks,
    extract.openai_first_token,
    extract.openai_terminal,
)
OPENAI_RESPONSES: Final = ApiSpec(
    "openai.responses",
    extract.responses_result,
    extract.responses_events,
    extract.responses_first_token,
    extract.responses_terminal,
)
SPECS: Final[Mapping[str, ApiSpec]] = {spec.api: spec for spec in (ANTHROPIC, OPENAI, OPENAI_RESPONSES)}


def _sampled_in(request_id: str | None, rate: float) -> bool:
    if request_id is None:
        return random.random() < rate
    # Deterministic by request id, like ingest's sampling: a retried request is sampled the same way.
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


@dataclass(frozen=True, slots=True)
class Tee:
    """What every call of one wrapped client shares."""

    sink: Sink
    source: Source
    sample_rate: float
    spec: ApiSpec

    def speaking(self, spec: ApiSpec) -> Tee:
        """This tee for another API of the same client (OpenAI's `responses` beside `chat`)."""
        return Tee(self.sink, self.source, self.sample_rate, spec)

    def begin(
        self, kwargs: dict[str, Any], *, drop: frozenset[str] = frozenset(), add: Mapping[str, Any] = _NO_ADD
    ) -> Call | None:
        """Take the tee's own keyword arguments out of `kwargs`; None when this call is not mirrored."""
        override = kwargs.pop("tee_source", None)
        request_id = kwargs.pop("tee_request_id", None)
        try:
            if request_id is not None:
                request_id = check_request_id(request_id)
            if self.sample_rate < 1.0 and not _sampled_in(request_id, self.sample_rate):
                self.sink.count_sampled_out()
                return None
            source = self.source if override is None else self.source.merged(override)
            return Call(self, kwargs, source, request_id, drop, add)
        except Exception as exc:
            self.sink.count_internal_failure(exc)
            return None


class Call:
    """State of one mirrored call, from the request to the end of its stream."""

    __slots__ = (
        "tee", "kwargs", "source", "request_id", "drop", "add", "started_at", "t0_ns",
        "request_json", "events", "ttft_ms", "complete", "done", "streamed", "watching",
    )  # fmt: skip

    def __init__(
        self,
        tee: Tee,
        kwargs: Mapping[str, Any],
        source: Source,
        request_id: str | None,
        drop: frozenset[str],
        add: Mapping[str, Any],
    ) -> None:
        self.tee = tee
        self.kwargs: Mapping[str, Any] | None = kwargs
        self.source = source
        self.request_id = request_id
        self.drop = drop
        self.add = add
        self.request_json = ""
        self.events: list[Any] = []
        self.ttft_ms: float | None = None
        self.complete = False
        self.done = False
        self.streamed = kwargs.get("stream") is True or add.get("stream") is True
        self.watching = False  # a stream of this call is being observed
        self.restart_clock()

    def restart_clock(self) -> None:
        self.started_at = now()
        self.t0_ns = time.perf_counter_ns()

    def _elapsed_ms(self) -> float:
        return (time.perf_counter_ns() - self.t0_ns) / 1e6

    def _snapshot(self) -> None:
        if self.kwargs is not None:
            self.request_json = snapshot_request(self.kwargs, drop=self.drop, add=self.add)
            self.kwargs = None

    def _offer(
        self, extract: Callable[[Any], dict[str, Any]] | None, result: Any, error: dict[str, Any] | None
    ) -> None:
        self.tee.sink.offer(
            PendingCapture(
                api=self.tee.spec.api,
                source=self.source,
                request_id=self.request_id,
                started_at=self.started_at,
                request_json=self.request_json,
                extract=extract,
                result=result,
                ttft_ms=self.ttft_ms,
                latency_ms=self._elapsed_ms(),
                error=error,
            )
        )

    def returned(self, result: Any) -> Any:
        """The SDK call returned `result`: capture it now, or watch it if it is a stream. Returns `result`."""
        try:
            self._snapshot()
            kind = _kind(type(result))
            if kind == "async stream":
                self.watching = True
                _observe_async_stream(result, self)
            elif kind == "stream":
                self.watching = True
                _observe_sync_stream(result, self)
            elif kind == "raw":
                raw.observe(result, self)
            else:
                self.done = True
                self._offer(self.tee.spec.from_result, result, None)
        except Exception as exc:
            self.tee.sink.count_internal_failure(exc)
        return result

    def body_read(self, response: Any) -> None:
        """The body of a raw response (`with_raw_response`, `with_streaming_response`) was read."""
        if self.done:
            return
        self.done = True
        try:
            self._offer(functools.partial(raw.parsed, self.tee.spec.from_result), response, None)
        except Exception as exc:
            self.tee.sink.count_internal_failure(exc)

    def response_closed(self) -> None:
        """A raw response is closed: a stream not read to its end is abandoned; an unread body is lost."""
        if self.watching:
            self.finish_stream(GeneratorExit())
        elif not self.done:
            self.done = True
            unread = TeeUnsupportedError("a raw response read only as bytes or lines is not captured")
            self.tee.sink.count_internal_failure(unread)

    def raised(self, exc: BaseException) -> None:
        """The SDK call raised `exc` (the caller re-raises it unchanged)."""
        if self.done:
            return
        try:
            self._snapshot()
            self.done = True
            self._offer(None, None, error_info(exc))
        except Exception as inner:
            self.tee.sink.count_internal_failure(inner)

    def on_event(self, event: Any) -> None:
        try:
            if self.done:
                return
            self.events.append(event)
            spec = self.tee.spec
            if self.ttft_ms is None and spec.first_token(event):
                self.ttft_ms = self._elapsed_ms()
            if spec.terminal(event):
                self.complete = True
        except Exception:  # an event of a shape we do not know must not stop the stream
            return

    def finish_stream(self, exc: BaseException | None) -> None:
        """The stream ended (exc None), failed, or was closed early (GeneratorExit); capture once."""
        if self.done:
            return
        self.done = True
        try:
            if exc is None or (isinstance(exc, GeneratorExit) and self.complete):
                error = None
            elif isinstance(exc, GeneratorExit):
                error = dict(ABANDONED_ERROR)
            else:
                error = error_info(exc)
            self._offer(self.tee.spec.from_events, self.events, error)
        except Exception as inner:
            self.tee.sink.count_internal_failure(inner)


ResultKind = Literal["async stream", "stream", "raw", "whole"]
# What each result class is, found once: a missing attribute on a pydantic model class costs microseconds.
_KINDS: dict[type, ResultKind] = {}


def _kind(cls: type) -> ResultKind:
    kind = _KINDS.get(cls)
    if kind is None:
        kind = (
            "async stream" if hasattr(cls, "__anext__")
            else "stream" if hasattr(cls, "__next__")
            else "raw" if raw.is_raw_response_class(cls)
            else "whole"
        )  # fmt: skip
        _KINDS[cls] = kind
    return kind


def _observe_sync_stream(stream: Any, call: Call) -> None:
    # Same Stream object for the caller: only its event iterator and close() are replaced.
    inner = stream._iterator
    stream._iterator = _observe(inner, call)
    original_close = stream.close

    def close() -> None:
        call.finish_stream(GeneratorExit())
        original_close()

    stream.close = close


def _observe_async_stream(stream: Any, call: Call) -> None:
    inner = stream._iterator
    stream._iterator = _observe_async(inner, call)
    original_close = stream.close

    async def close() -> None:
        call.finish_stream(GeneratorExit())
        await original_close()

    stream.close = close


def _observe(inner: Iterator[Any], call: Call) -> Iterator[Any]:
    try:
        for event in inner:
            call.on_event(event)
            yield event
    except GeneratorExit as exc:
        call.finish_stream(exc)
        close = getattr(inner, "close", None)
        if close is not None:
            close()
        raise
    except BaseException as exc:
        call.finish_stream(exc)
        raise
    call.finish_stream(None)


async def _observe_async(inner: AsyncIterator[Any], call: Call) -> AsyncIterator[Any]:
    try:
        async for event in inner:
            call.on_event(event)
            yield event
    except GeneratorExit as exc:
        call.finish_stream(exc)
        aclose = getattr(inner, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    except BaseException as exc:
        call.finish_stream(exc)
        raise
    call.finish_stream(None)


def hook_stream_manager(manager: Any, call: Call) -> None:
    """Mirror a stream helper's manager: Anthropic's `MessageStreamManager` (`messages.stream`), OpenAI's
    `ChatCompletionStreamManager` (`chat.completions.stream`) and `ResponseStreamManager`
    (`responses.stream`), and their async twins.

    The manager sends its request on `__enter__` through a private `__api_request`; it is replaced by
    a timed call that observes the raw stream the manager then wraps in its `MessageStream`.
    """
    name = next((key for key in vars(manager) if key.endswith("__api_request")), None)
    if name is None:
        raise TeeUnsupportedError(
            f"{type(manager).__qualname__} has no __api_request attribute: messages.stream() not mirrored"
        )
    request = vars(manager)[name]
    if inspect.isawaitable(request):
        setattr(manager, name, _await_request(request, call))
    else:
        setattr(manager, name, functools.partial(_call_request, request, call))


def _call_request(request: Callable[[], Any], call: Call) -> Any:
    call.restart_clock()
    try:
        raw = request()
    except BaseException as exc:
        call.raised(exc)
        raise
    return call.returned(raw)


async def _await_request(request: Awaitable[Any], call: Call) -> Any:
    call.restart_clock()
    try:
        raw = await request
    except BaseException as exc:
        call.raised(exc)
        raise
    return call.returned(raw)
