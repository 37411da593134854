"""Call timing taken where the bytes move, not where the SDK hands over parsed events.

httpx event hooks (the same for the `httpx` the OpenAI-compatible providers use and the flavour the Anthropic
SDK ships) stamp the call's `StreamState`: the start when the request's last byte has been written to an
established connection (httpcore's `trace` extension, `send_request_body.complete`), TTFB when the first SSE
`data:` line arrives, TTFT when the first data line carrying a text or thinking delta arrives — read from the
raw bytes as each chunk comes off the socket, lines split across chunks included. What comes before the write
is client work, not the provider's latency: the SDK building the request, waiting for a pooled connection,
a new TCP/TLS connect, and the event loop's turns in between (httpcore 1.x's locks yield to the loop twice per
request, httpcore2's do not: on a busy loop that alone put hundreds of ms into the OpenAI arm's TTFB and
none into the Anthropic arms'). A transport without httpcore (MockTransport) is timed from when the request
is handed to it. Each provider says which data lines
carry content (`ContentTest`); the parse that fills the result stays with the SDK or the provider's own
reader, whose stamps remain the fallback for a response these hooks did not see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from shadowlab.providers.stream_state import StreamState

__all__ = ["ContentTest", "SseStamp", "timed_call", "timing_hooks"]

# Whether one SSE data payload (the bytes after `data:`, stripped) carries a non-empty text or thinking delta.
ContentTest = Callable[[bytes], bool]
EventHooks = dict[str, list[Callable[[Any], Awaitable[None]]]]

# httpcore's trace event (prefixed `http11.` or `http2.`) once the request's last byte is in the socket.
_WRITTEN = ".send_request_body.complete"
# The call being sent from this task: the hooks run inside the SDK's `send`, in the caller's task.
_CALL: ContextVar[StreamState | None] = ContextVar("shadowlab_provider_call", default=None)


@contextmanager
def timed_call(state: StreamState) -> Iterator[None]:
    """Requests sent inside this block are timed into `state`."""
    token = _CALL.set(state)
    try:
        yield
    finally:
        _CALL.reset(token)


class SseStamp:
    """Finds the first data line and the first content-bearing one in SSE bytes arriving in chunks; stamps
    them with the arrival time of the chunk that completed the line."""

    def __init__(self, state: StreamState, is_content: ContentTest) -> None:
        self._state = state
        self._is_content = is_content
        self._partial = b""
        self.done = False

    def feed(self, chunk: bytes, at: float) -> None:
        lines = (self._partial + chunk).splitlines(keepends=True)  # bytes: splits on \n, \r\n and \r only
        self._partial = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            self._state.first_byte(at)
            data = line[5:].strip()
            if data and self._is_content(data):
                self._state.first_token(at)
                self.done, self._partial = True, b""
                return


def timing_hooks(http: ModuleType, is_content: ContentTest) -> EventHooks:
    """`event_hooks` for an AsyncClient of the httpx flavour `http` (the module: `httpx`, or the one the
    Anthropic SDK ships) that time the calls made inside `timed_call`."""

    class TimedStream(http.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, stamp: SseStamp, clock: Callable[[], float]) -> None:
            self._inner, self._stamp, self._clock = inner, stamp, clock

        async def __aiter__(self) -> AsyncIterator[bytes]:
            stamp, clock = self._stamp, self._clock
            async for chunk in self._inner:
                if not stamp.done:
                    stamp.feed(chunk, clock())
                yield chunk

        async def aclose(self) -> None:
            await self._inner.aclose()

    async def on_request(request: Any) -> None:
        state = _CALL.get()
        if state is None:
            return
        state.sent()  # provisional: a transport that emits no trace events is timed from here
        inner = request.extensions.get("trace")

        async def trace(event: str, info: Any) -> None:
            if event.endswith(_WRITTEN):
                state.sent()
            if inner is not None:
                await inner(event, info)

        request.extensions["trace"] = trace

    async def on_response(response: Any) -> None:
        state = _CALL.get()
        if state is not None:
            response.stream = TimedStream(response.stream, SseStamp(state, is_content), state.clock)

    return {"request": [on_request], "response": [on_response]}
