"""TTFB and TTFT are stamped from the raw SSE bytes as they arrive (`shadowlab.providers.wire_timing`): at the
chunk that completes the first data line / the first content-bearing data line, not at the head, a ping, a
message_start or an empty delta, and not when the parser gets around to the event. A MockTransport feeds
each provider's stream in chunks and moves a fake clock before each one: no sleeps, exact times. The clock
starts when the request is on an established connection: a pool wait and a slow connect (httpcore's pool over
a mock network that moves the clock on cue) are not the provider's latency."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from shadowlab.apis import normalize_request_body
from shadowlab.providers import ProviderConfig, ProviderResult, create_provider
from shadowlab.providers.anthropic import has_content as anthropic_has_content
from shadowlab.providers.openai_compat import OpenAICompatProvider
from shadowlab.providers.openai_responses import OpenAIResponsesProvider
from tests.support.clock import FakeClock
from tests.support.provider_calls import complete_once, httpx_of

REQUEST = normalize_request_body(
    "anthropic.messages",
    {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]},
)
_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
)
# (ms after the request, chunk): the first data line at 10 ms; a ping, an empty delta and half of the first
# content line at 20 ms; the rest of that line at 30 ms; the blank line ending its event, and the end, at 40.
STREAMS: dict[str, list[tuple[float, bytes]]] = {
    "anthropic": [
        (10, _START + b'event: ping\ndata: {"type": "ping"}\n\n'),
        (
            20,
            b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
            b'"content_block":{"type":"text","text":""}}\n\n'
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":""}}\n\n'
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"te',
        ),
        (30, b'xt_delta","text":"Hello"}}\n'),
        (
            40,
            b'\nevent: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
            b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
            b'"stop_sequence":null},"usage":{"output_tokens":1}}\n\n'
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        ),
    ],
    "openai": [
        (10, b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'),
        (
            20,
            b": keep-alive\n\n"
            b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":""}}]}\n\n'
            b'data: {"id":"c1","choices":[{"index":0,"delta":{"con',
        ),
        (30, b'tent":"Hello"}}]}\r\n'),
        (
            40,
            b'\r\ndata: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
            b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,'
            b'"total_tokens":6}}\n\ndata: [DONE]\n\n',
        ),
    ],
    "openai_responses": [
        (
            10,
            b'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_1",'
            b'"status":"in_progress","output":[]}}\n\n',
        ),
        (
            20,
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
            b'"output_index":0,"content_index":0,"delta":""}\n\n'
            b'event: response.output_text.delta\ndata: {"type":"response.output_te',
        ),
        (30, b'xt.delta","output_index":0,"content_index":0,"delta":"Hello"}\r\n'),
        (
            40,
            b'\r\nevent: response.completed\ndata: {"type":"response.completed","response":{"id":"resp_1",'
            b'"status":"completed","usage":{"input_tokens":5,"output_tokens":1,"total_tokens":6}}}\n\n',
        ),
    ],
}


def _run(
    name: str, chunks: list[tuple[float, bytes]], read_to_end: list[bool] | None = None
) -> ProviderResult:
    lib: Any = httpx_of(name)
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC), mono=100.0)
    sent_at: list[float] = []

    class Chunks(lib.AsyncByteStream):  # type: ignore[misc]
        async def __aiter__(self) -> Any:
            for at_ms, chunk in chunks:
                clock.mono = sent_at[0] + at_ms / 1000
                yield chunk
            if read_to_end is not None:
                read_to_end.append(True)

    def handle(request: Any) -> Any:
        sent_at.append(clock.mono)
        clock.advance(0.005)  # the head after 5 ms: not TTFB (that is the first data line)
        return lib.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunks())

    config = ProviderConfig(
        base_url="http://mock/v1",
        api_key=SecretStr("k"),
        transport=lib.MockTransport(handle),
        clock=clock.monotonic,
    )
    return complete_once(name, config, REQUEST)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_ttft_is_stamped_when_the_first_content_line_completes(name: str) -> None:
    read_to_end: list[bool] = []
    result = _run(name, STREAMS[name], read_to_end)
    assert result.ok, result.error_detail
    assert read_to_end == [True]  # the body is read past `[DONE]` to its end: the connection can be reused
    assert result.text == "Hello"
    assert result.ttfb_ms == pytest.approx(10)
    # 30, not 20 (the line started), and not 40 (when the event's blank line let a parser hand it over)
    assert result.ttft_ms == pytest.approx(30)
    assert result.ttlt_ms == pytest.approx(40)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_a_data_line_split_in_one_byte_chunks_is_stamped_at_its_last_byte(name: str) -> None:
    """Every byte its own chunk, 1 ms apart: TTFT is the arrival of the line end of the first content line
    (a lone CR ends a line in SSE: a line reader that waits for a possible LF stamps one byte late)."""
    stream = b"".join(chunk for _, chunk in STREAMS[name])
    line_end = min(stream.find(end, stream.index(b"Hello")) % len(stream) for end in (b"\n", b"\r"))
    result = _run(name, [(i + 1, stream[i : i + 1]) for i in range(len(stream))])
    assert result.ok and result.text == "Hello", result.error_detail
    assert result.ttft_ms == pytest.approx(line_end + 1)
    assert result.ttfb_ms is not None and result.ttft_ms is not None and result.ttfb_ms < result.ttft_ms


class Delivery(asyncio.Protocol):
    """Where anyio's asyncio stream under httpcore (`network_stream._stream._protocol`) is handed the bytes:
    by the loop, as soon as the socket is readable, before the reading task gets its turn."""

    def __init__(self) -> None:
        self.delivered: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.delivered.append(data)


def _pooled_transport(
    name: str,
    clock: FakeClock,
    chunks: list[tuple[float, bytes]],
    connect_s: float,
    read_late_ms: float = 0.0,
    deliveries: list[Delivery] | None = None,
    write_late_ms: float = 0.0,
) -> Any:
    """A transport of provider `name`'s httpx flavour over its httpcore pool of ONE connection, on a mock
    network whose connect takes `connect_s` and whose response chunks arrive `at_ms` after the request's last
    byte was written (the head with the first one), each handed to the connection's protocol then and read
    `read_late_ms` later (a busy loop); the writing task gets its next turn `write_late_ms` after each write
    (anyio yields after every write); each response closes its connection. The protocols go to
    `deliveries`."""
    lib: Any = httpx_of(name)
    core: Any = importlib.import_module(lib.__name__.replace("httpx", "httpcore"))
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"

    class Network(core.AsyncMockStream):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__([head + chunks[0][1], *(chunk for _, chunk in chunks[1:])])
            self.times, self.written_at = [at for at, _ in chunks], 0.0
            self._stream = SimpleNamespace(_protocol=Delivery())  # anyio's SocketStream, as far as it matters
            if deliveries is not None:
                deliveries.append(self._stream._protocol)

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            if buffer:  # as httpcore's anyio stream: the end of a body with a length writes nothing
                self.written_at = clock.mono
                clock.advance(write_late_ms / 1000)

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            data: bytes = await super().read(max_bytes, timeout)
            if self.times:
                clock.mono = self.written_at + self.times.pop(0) / 1000
                self._stream._protocol.data_received(data)
                clock.advance(read_late_ms / 1000)
            return data

    class SlowConnect(core.AsyncMockBackend):  # type: ignore[misc]
        async def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
            clock.advance(connect_s)
            return Network()

    pool = core.AsyncConnectionPool(max_connections=1, network_backend=SlowConnect([]))

    class Body(lib.AsyncByteStream):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for part in self._inner:
                yield part

        async def aclose(self) -> None:
            await self._inner.aclose()

    class Pooled(lib.AsyncBaseTransport):  # type: ignore[misc]
        """What httpx's own transport does, with the mock network in its pool."""

        async def handle_async_request(self, request: Any) -> Any:
            sent = core.Request(
                request.method,
                str(request.url),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
            response = await pool.handle_async_request(sent)
            return lib.Response(
                response.status,
                headers=response.headers,
                stream=Body(response.stream),
                extensions=response.extensions,
            )

        async def aclose(self) -> None:
            await pool.aclose()

    return Pooled()


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_time_waiting_for_a_connection_and_connecting_is_not_the_providers(name: str) -> None:
    """Two calls at once through a pool of one connection, each connect taking 0.5 s: the second waits for
    the first's whole stream and then connects. Both read TTFB 10 ms / TTFT 30 ms, the times after their
    request was written (counted from the hand-over to the client, they read 510/530 and 1050/1070 ms: the
    queueing on a busy event loop that inflated the OpenAI arm of the demo)."""
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC), mono=100.0)
    transport = _pooled_transport(name, clock, STREAMS[name], connect_s=0.5)
    config = ProviderConfig(
        base_url="http://mock/v1", api_key=SecretStr("k"), transport=transport, clock=clock.monotonic
    )

    async def two_at_once() -> list[ProviderResult]:
        provider = create_provider(name, config)
        try:
            return list(await asyncio.gather(provider.complete(REQUEST), provider.complete(REQUEST)))
        finally:
            await provider.aclose()

    for result in asyncio.run(two_at_once()):
        assert result.ok and result.text == "Hello", result.error_detail
        assert (result.ttfb_ms, result.ttft_ms, result.ttlt_ms) == pytest.approx((10, 30, 40))
    assert clock.mono == pytest.approx(100 + 2 * (0.5 + 0.040))  # both connected, the second after the first


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_a_chunk_is_stamped_when_the_loop_delivered_it_not_when_the_reader_got_its_turn(name: str) -> None:
    """Every chunk is handed to the connection's protocol at its time and read 7 ms later: TTFT is the 30 ms
    of the delivery (read at 37). The first data line came with the head, before the watch began (TTFB read
    at 10 + 7); TTLT is when the parse ended. The protocol is left as it was for the pooled connection's next
    response."""
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC), mono=100.0)
    deliveries: list[Delivery] = []
    transport = _pooled_transport(name, clock, STREAMS[name], 0.0, read_late_ms=7, deliveries=deliveries)
    config = ProviderConfig(
        base_url="http://mock/v1", api_key=SecretStr("k"), transport=transport, clock=clock.monotonic
    )
    result = complete_once(name, config, REQUEST)
    assert result.ok and result.text == "Hello", result.error_detail
    assert (result.ttfb_ms, result.ttft_ms, result.ttlt_ms) == pytest.approx((17, 30, 47))
    assert [len(d.delivered) for d in deliveries] == [len(STREAMS[name])]
    assert "data_received" not in vars(deliveries[0])


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_the_clock_starts_at_the_last_write_not_at_the_writers_next_turn(name: str) -> None:
    """The writing task gets its turn back 25 ms after each write (a loop busy with other streams): the times
    still count from the body's write, the last bytes of the request (from the writer's next turn, when
    httpcore reports the write complete, TTFT would read 5 ms, less than the provider took)."""
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC), mono=100.0)
    transport = _pooled_transport(name, clock, STREAMS[name], 0.0, write_late_ms=25)
    config = ProviderConfig(
        base_url="http://mock/v1", api_key=SecretStr("k"), transport=transport, clock=clock.monotonic
    )
    result = complete_once(name, config, REQUEST)
    assert result.ok and result.text == "Hello", result.error_detail
    assert (result.ttfb_ms, result.ttft_ms, result.ttlt_ms) == pytest.approx((10, 30, 40))


Test = Callable[[bytes], bool]


@pytest.mark.parametrize(
    ("has_content", "data", "expected"),
    [
        (
            anthropic_has_content,
            b'{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hm"}}',
            True,
        ),
        (
            anthropic_has_content,
            b'{"type":"content_block_delta","index":1,'
            b'"delta":{"type":"input_json_delta","partial_json":"{\\"text_delta\\""}}',
            False,
        ),
        (
            anthropic_has_content,
            b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}',
            False,
        ),
        (
            OpenAICompatProvider.has_content,
            b'{"choices":[{"index":0,"delta":{"reasoning_content":"Hm"}}]}',
            True,
        ),
        (OpenAICompatProvider.has_content, b'{"choices":[{"index":0,"delta":{"reasoning":"Hm"}}]}', True),
        (
            OpenAICompatProvider.has_content,
            b'{"choices":[{"index":1,"delta":{"content":"other choice"}}]}',
            False,
        ),
        (
            OpenAICompatProvider.has_content,
            b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,'
            b'"function":{"arguments":"{\\"content\\""}}]}}]}',
            False,
        ),
        (
            OpenAIResponsesProvider.has_content,
            b'{"type":"response.reasoning_summary_text.delta","delta":"Hm"}',
            True,
        ),
        (OpenAIResponsesProvider.has_content, b'{"type":"response.refusal.delta","delta":"No"}', True),
        (
            OpenAIResponsesProvider.has_content,
            b'{"type":"response.function_call_arguments.delta","delta":"{"}',
            False,
        ),
        (OpenAIResponsesProvider.has_content, b"not json .delta", False),
    ],
)
def test_which_data_lines_carry_content(has_content: Test, data: bytes, expected: bool) -> None:
    assert has_content(data) is expected
