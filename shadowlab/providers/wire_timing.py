"""Call timing taken where the bytes move, not where the SDK hands over parsed events.

httpx event hooks (the same for the `httpx` the OpenAI-compatible providers use and the flavour the Anthropic
SDK ships) stamp the call's `StreamState`: the start when the request's last byte is written to an
established connection (httpcore's `trace` extension, `send_request_body.started`), TTFB when the first SSE
`data:` line arrives, TTFT when the first data line carrying a text or thinking delta arrives — read from the
raw bytes as each chunk comes off the socket, lines split across chunks included. What comes before the write
is client work, not the provider's latency: the SDK building the request, waiting for a pooled connection,
a new TCP/TLS connect, and the event loop's turns in between (httpcore 1.x's locks yield to the loop twice per
request, httpcore2's do not: on a busy loop that alone put hundreds of ms into the OpenAI arm's TTFB and
none into the Anthropic arms'). A transport without httpcore (MockTransport) is timed from when the request
is handed to it. A chunk is stamped when the connection's asyncio protocol was handed its bytes
(`ArrivalWatch`), not when the reading task got its turn: on a loop busy with other streams that turn came
up to 14 ms later (bench_simulator, 64 streams). Each provider says which data lines
carry content (`ContentTest`); the parse that fills the result stays with the SDK or the provider's own
reader, whose stamps remain the fallback for a response these hooks did not see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from shadowlab.providers.stream_state import StreamState

__all__ = ["ArrivalWatch", "ContentTest", "SseStamp", "timed_call", "timing_hooks"]

# Whether one SSE data payload (the bytes after `data:`, stripped) carries a non-empty text or thinking delta.
ContentTest = Callable[[bytes], bool]
EventHooks = dict[str, list[Callable[[Any], Awaitable[None]]]]

# httpcore's trace event (prefixed `http11.` or `http2.`) in the same turn of the loop as the write of the
# request's last bytes (the body; the head was written the turn before). Not `.complete`: anyio yields to the
# loop after every write, so that event comes a turn later — on a loop busy with 256 streams late enough that
# a TTFT stamped at the protocol read less than the provider took (median -0.66 ms in bench_simulator).
_WRITTEN = ".send_request_body.started"
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


class ArrivalWatch:
    """When bytes last reached a response's connection: its asyncio protocol's `data_received`, which the loop
    calls as soon as its selector reports the socket readable — the reading task resumes only on a later turn
    of the loop, after whatever else that turn runs. httpcore's anyio stream reads one protocol delivery per
    read (the transport is paused in between), so the bytes a chunk ends with arrived at the latest delivery.

    Only for HTTP/1.1 over anyio's asyncio streams (httpcore's default, both flavours): an HTTP/2 connection
    carries other responses' bytes, and any other stream has no protocol to watch (`watch` gives None, the
    chunk is stamped when it is read)."""

    def __init__(self, protocol: Any, clock: Callable[[], float]) -> None:
        self._protocol, self._clock = protocol, clock
        self._deliver = type(protocol).data_received
        self.at: float | None = None  # nothing delivered since the watch began (the head's bytes came before)
        protocol.data_received = self._data_received  # an instance attribute: shadows the class's method

    @classmethod
    def watch(cls, response: Any, clock: Callable[[], float]) -> ArrivalWatch | None:
        if getattr(response, "http_version", None) != "HTTP/1.1":
            return None
        network = response.extensions.get("network_stream")
        protocol = getattr(getattr(network, "_stream", None), "_protocol", None)
        if not isinstance(protocol, asyncio.Protocol) or "data_received" in vars(protocol):
            return None  # not anyio's asyncio stream, or already watched
        return cls(protocol, clock)

    def _data_received(self, data: bytes) -> None:
        self.at = self._clock()
        self._deliver(self._protocol, data)

    def end(self) -> None:
        """Stop watching (the connection goes back to the pool with its protocol as it was)."""
        if vars(self._protocol).get("data_received") == self._data_received:
            del self._protocol.data_received


def timing_hooks(http: ModuleType, is_content: ContentTest) -> EventHooks:
    """`event_hooks` for an AsyncClient of the httpx flavour `http` (the module: `httpx`, or the one the
    Anthropic SDK ships) that time the calls made inside `timed_call`."""

    class TimedStream(http.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(
            self, inner: Any, stamp: SseStamp, clock: Callable[[], float], arrivals: ArrivalWatch | None
        ) -> None:
            self._inner, self._stamp, self._clock, self._arrivals = inner, stamp, clock, arrivals

        async def __aiter__(self) -> AsyncIterator[bytes]:
            stamp, clock, arrivals = self._stamp, self._clock, self._arrivals
            try:
                async for chunk in self._inner:
                    if not stamp.done:
                        at = arrivals.at if arrivals is not None else None
                        stamp.feed(chunk, clock() if at is None else at)
                        if stamp.done:
                            self._end_watch()
                    yield chunk
            finally:
                self._end_watch()

        def _end_watch(self) -> None:
            if self._arrivals is not None:
                self._arrivals.end()
                self._arrivals = None

        async def aclose(self) -> None:
            self._end_watch()
            await self._inner.aclose()

    async def on_request(request: Any) -> None:
        state = _CALL.get()
        if state is None:
            return
        state.sent()  # provisional: a transport that emits no trace events is timed from here
        inner = request.extensions.get("trace")

        async def trace(event: str, info: Any) -> None:
            if inner is not None:
                await inner(event, info)
            if event.endswith(_WRITTEN):
                state.sent()

        request.extensions["trace"] = trace

    async def on_response(response: Any) -> None:
        state = _CALL.get()
        if state is not None:
            arrivals = ArrivalWatch.watch(response, state.clock)
            response.stream = TimedStream(response.stream, SseStamp(state, is_content), state.clock, arrivals)

    return {"request": [on_request], "response": [on_response]}
