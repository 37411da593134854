"""The wrapped SDK clients behave like the originals, and each call leaves one valid capture."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx2
import openai
import pytest

import shadowlab_tee as tee
from shadowlab.capture import parse_capture_bytes
from shadowlab_tee.wrapper import TeedClient
from tests.support import fake_upstreams as fakes
from tests.support.tee_captures import delivered, response_of

SOURCE = tee.Source(service="checkout", route="/chat", environment="test", tags={"team": "ml"})


def test_anthropic_create_returns_what_the_unwrapped_client_returns(sink: tee.MemorySink) -> None:
    wrapped = tee.wrap(fakes.anthropic_client(), sink, SOURCE)
    plain = fakes.anthropic_client()
    request = fakes.ANTHROPIC_REQUEST | {"model": fakes.TOOLS_MODEL}
    got, expected = wrapped.messages.create(**request), plain.messages.create(**request)
    assert type(got) is type(expected) and got.model_dump() == expected.model_dump()
    (capture,) = delivered(sink, 1)
    assert capture.api == "anthropic.messages" and capture.source.service == "checkout"
    assert capture.source.tags == {"team": "ml"} and capture.captured_at.utcoffset() is not None
    assert capture.to_json_dict()["request"] == request
    response = response_of(capture)
    assert response["text"] == "Hello, world!" and response["stop_reason"] == "tool_use"
    assert response["tool_calls"] == [{"id": "toolu_01", "name": "get_weather", "input": fakes.TOOL_INPUT}]
    assert response["usage"]["cache_read_input_tokens"] == 7 and response["ttft_ms"] is None
    assert response["latency_ms"] > 0 and response["error"] is None


def test_anthropic_raw_stream_is_the_same_stream_and_is_captured_with_ttft(sink: tee.MemorySink) -> None:
    wrapped = tee.wrap(fakes.anthropic_client(), sink, SOURCE)
    stream = wrapped.messages.create(**fakes.ANTHROPIC_REQUEST, stream=True)
    assert isinstance(stream, anthropic.Stream)
    expected = list(fakes.anthropic_client().messages.create(**fakes.ANTHROPIC_REQUEST, stream=True))
    assert [e.model_dump() for e in stream] == [e.model_dump() for e in expected]
    response = response_of(delivered(sink, 1)[0])
    assert response["text"] == "Hello, world!" and response["stop_reason"] == "end_turn"
    # message_delta's cumulative output_tokens replace message_start's; input-side counts survive.
    assert response["usage"] == {
        "input_tokens": 21,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 7,
        "output_tokens": 12,
    }
    assert 0 < response["ttft_ms"] <= response["latency_ms"]


def test_anthropic_stream_helper_keeps_text_stream_and_final_message(sink: tee.MemorySink) -> None:
    wrapped = tee.wrap(fakes.anthropic_client(), sink, SOURCE)
    request = fakes.ANTHROPIC_REQUEST | {"model": fakes.TOOLS_MODEL}
    with wrapped.messages.stream(**request) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    with fakes.anthropic_client().messages.stream(**request) as plain:
        expected = plain.get_final_message()
    assert text == "Hello, world!" and final.model_dump() == expected.model_dump()
    capture = delivered(sink, 1)[0]
    assert capture.to_json_dict()["request"] == request | {"stream": True}
    response = response_of(capture)
    assert response["tool_calls"] == [{"id": "toolu_01", "name": "get_weather", "input": fakes.TOOL_INPUT}]
    assert response["ttft_ms"] is not None and response["error"] is None


def test_leaving_a_stream_early_is_captured_as_abandoned(sink: tee.MemorySink) -> None:
    wrapped = tee.wrap(fakes.anthropic_client(), sink, SOURCE)
    with wrapped.messages.stream(**fakes.ANTHROPIC_REQUEST) as stream:
        first = next(iter(stream.text_stream))
    assert first == "Hello"
    response = response_of(delivered(sink, 1)[0])
    assert response["error"]["type"] == "StreamAbandoned" and response["text"] == "Hello"


def test_openai_create_and_stream_match_unwrapped_and_are_captured(sink: tee.MemorySink) -> None:
    wrapped = tee.wrap(fakes.openai_client(), sink, SOURCE)
    plain = fakes.openai_client()
    request = fakes.OPENAI_REQUEST | {"model": fakes.TOOLS_MODEL}
    assert (
        wrapped.chat.completions.create(**request).model_dump()
        == plain.chat.completions.create(**request).model_dump()
    )
    streamed = request | {"stream": True, "stream_options": {"include_usage": True}}
    stream = wrapped.chat.completions.create(**streamed)
    assert isinstance(stream, openai.Stream)
    assert [c.model_dump() for c in stream] == [
        c.model_dump() for c in plain.chat.completions.create(**streamed)
    ]
    whole, chunked = delivered(sink, 2)
    assert whole.api == chunked.api == "openai.chat"
    assert chunked.to_json_dict()["request"] == streamed
    for capture in (whole, chunked):
        response = response_of(capture)
        assert response["text"] == "Hello, world!" and response["stop_reason"] == "tool_calls"
        assert response["tool_calls"] == [{"id": "call_01", "name": "get_weather", "input": fakes.TOOL_INPUT}]
        assert response["usage"] == fakes.OPENAI_USAGE
    assert response_of(chunked)["ttft_ms"] is not None and response_of(whole)["ttft_ms"] is None


def test_async_clients_are_mirrored_the_same_way(sink: tee.MemorySink) -> None:
    async def run() -> list[str]:
        claude = tee.wrap(fakes.anthropic_client(is_async=True), sink, SOURCE)
        gpt = tee.wrap(fakes.openai_client(is_async=True), sink, SOURCE)
        message = await claude.messages.create(**fakes.ANTHROPIC_REQUEST)
        assert isinstance(message, anthropic.types.Message)
        events = [e.type async for e in await claude.messages.create(**fakes.ANTHROPIC_REQUEST, stream=True)]
        async with claude.messages.stream(**fakes.ANTHROPIC_REQUEST) as stream:
            text = "".join([t async for t in stream.text_stream])
            assert (await stream.get_final_message()).usage.output_tokens == 12
        chunks = await gpt.chat.completions.create(**fakes.OPENAI_REQUEST, stream=True)
        assert isinstance(chunks, openai.AsyncStream)
        async for _ in chunks:
            pass
        await gpt.chat.completions.create(**fakes.OPENAI_REQUEST)
        return [text, events[-1]]

    assert asyncio.run(run()) == ["Hello, world!", "message_stop"]
    captures = delivered(sink, 5)
    assert [c.api for c in captures] == ["anthropic.messages"] * 3 + ["openai.chat"] * 2
    ttfts = [response_of(c)["ttft_ms"] for c in captures]
    assert [t is not None for t in ttfts] == [False, True, True, True, False]


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_a_failed_call_raises_the_same_exception_and_is_captured_with_its_error(
    sink: tee.MemorySink, api: str
) -> None:
    error_type: type[Exception]
    if api == "anthropic":
        wrapped, request = tee.wrap(fakes.anthropic_client(), sink, SOURCE), fakes.ANTHROPIC_REQUEST
        resource, error_type = wrapped.messages, anthropic.RateLimitError
    else:
        wrapped, request = tee.wrap(fakes.openai_client(), sink, SOURCE), fakes.OPENAI_REQUEST
        resource, error_type = wrapped.chat.completions, openai.RateLimitError
    with pytest.raises(error_type) as raised:
        resource.create(**request | {"model": fakes.RATE_LIMITED_MODEL})
    response = response_of(delivered(sink, 1)[0])
    assert response["error"] == {"type": "RateLimitError", "message": str(raised.value), "status_code": 429}
    assert response["text"] is None and response["latency_ms"] >= 0


def test_an_error_event_mid_stream_reaches_the_caller_and_keeps_the_partial_answer(
    sink: tee.MemorySink,
) -> None:
    events = fakes.anthropic_events("claude-test", tools=False)[:4]  # message_start … first text delta
    body = (
        fakes.anthropic_sse(events)
        + b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
    )
    body += b'"message":"Overloaded"}}\n\n'

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    wrapped = tee.wrap(fakes.anthropic_client(handler), sink, SOURCE)
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError, match="Overloaded"),
        wrapped.messages.stream(**fakes.ANTHROPIC_REQUEST) as stream,
    ):
        seen.extend(stream.text_stream)
    assert seen == ["Hello"]
    response = response_of(delivered(sink, 1)[0])
    assert response["text"] == "Hello" and response["error"]["type"] == "APIStatusError"


def test_no_api_key_or_authorization_header_reaches_a_capture(sink: tee.MemorySink) -> None:
    seen_headers: list[httpx2.Headers] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen_headers.append(request.headers)
        return fakes.handle(request)

    claude = tee.wrap(fakes.anthropic_client(handler), sink, SOURCE)
    gpt = tee.wrap(fakes.openai_client(handler), sink, SOURCE)
    bearer = {"Authorization": f"Bearer {fakes.ANTHROPIC_KEY}", "X-Api-Key": fakes.ANTHROPIC_KEY}
    claude.messages.create(
        **fakes.ANTHROPIC_REQUEST, extra_headers=bearer, extra_query={"key": fakes.OPENAI_KEY}
    )
    list(claude.messages.create(**fakes.ANTHROPIC_REQUEST, stream=True, extra_headers=bearer))
    gpt.chat.completions.create(**fakes.OPENAI_REQUEST, extra_headers={"api-key": fakes.OPENAI_KEY})
    with pytest.raises(openai.RateLimitError):
        gpt.chat.completions.create(**fakes.OPENAI_REQUEST | {"model": fakes.RATE_LIMITED_MODEL})
    assert seen_headers[0]["x-api-key"] == fakes.ANTHROPIC_KEY  # the key really went upstream
    assert seen_headers[2]["authorization"] == f"Bearer {fakes.OPENAI_KEY}"
    blob = b"\n".join(value for _, value in sink.records()) if sink.flush(10) else b""
    assert len(sink.records()) == 4
    for secret in (fakes.ANTHROPIC_KEY, fakes.OPENAI_KEY, "sk-ant-", "sk-proj-", "Bearer"):
        assert secret.encode() not in blob
    assert b"authorization" not in blob.lower() and b"api-key" not in blob.lower()


def test_per_call_source_and_request_id_never_reach_the_sdk(sink: tee.MemorySink) -> None:
    wrapped = tee.wrap(fakes.anthropic_client(), sink, SOURCE)
    wrapped.messages.create(
        **fakes.ANTHROPIC_REQUEST,
        tee_source={
            "conversation_id": "conv-9",
            "user_hash": tee.hash_user("u1", salt="s"),
            "tags": {"ab": "b"},
        },
        tee_request_id="req-42",
    )
    wrapped.messages.create(**fakes.ANTHROPIC_REQUEST)
    first, second = delivered(sink, 2)
    assert first.request_id == "req-42" and first.source.conversation_id == "conv-9"
    assert first.source.tags == {"team": "ml", "ab": "b"} and first.source.route == "/chat"
    assert first.source.user_hash == tee.hash_user("u1", salt="s") != "u1"
    assert len(second.request_id) == 32 and second.source.conversation_id is None


def test_the_request_is_recorded_as_sent_even_if_the_caller_changes_it_later(sink: tee.MemorySink) -> None:
    wrapped = tee.wrap(fakes.openai_client(), sink, SOURCE)
    messages = [{"role": "user", "content": "first"}]
    completion = wrapped.chat.completions.create(model="gpt-test", messages=messages)
    messages.append({"role": "assistant", "content": completion.choices[0].message.content})
    messages[0]["content"] = "changed"
    (capture,) = delivered(sink, 1)
    assert capture.to_json_dict()["request"]["messages"] == [{"role": "user", "content": "first"}]


def test_sdk_objects_in_a_request_are_captured_as_their_json() -> None:
    sink = tee.MemorySink()
    wrapped = tee.wrap(fakes.anthropic_client(), sink, SOURCE)
    reply = wrapped.messages.create(**fakes.ANTHROPIC_REQUEST | {"model": fakes.TOOLS_MODEL})
    follow_up = [
        *fakes.ANTHROPIC_REQUEST["messages"],
        {"role": "assistant", "content": reply.content},  # SDK content blocks, as tool loops do
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "21C"}]},
    ]
    wrapped.messages.create(**fakes.ANTHROPIC_REQUEST | {"messages": follow_up})
    assert sink.close(timeout=10)
    second = parse_capture_bytes(sink.records()[1][1])
    blocks = second.to_json_dict()["request"]["messages"][1]["content"]
    assert blocks[1] == {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "get_weather",
        "input": fakes.TOOL_INPUT,
    }


def test_sampling_mirrors_only_the_chosen_share(sink: tee.MemorySink) -> None:
    none = tee.wrap(fakes.openai_client(), sink, SOURCE, sample_rate=0.0)
    half = tee.wrap(fakes.openai_client(), sink, SOURCE, sample_rate=0.5)
    for i in range(40):
        none.chat.completions.create(**fakes.OPENAI_REQUEST)
        half.chat.completions.create(**fakes.OPENAI_REQUEST, tee_request_id=f"r{i}")
    captured = {c.request_id for c in delivered(sink, sink.stats().offered)}
    again = tee.MemorySink()
    rerun = tee.wrap(fakes.openai_client(), again, SOURCE, sample_rate=0.5)
    for i in range(40):
        rerun.chat.completions.create(**fakes.OPENAI_REQUEST, tee_request_id=f"r{i}")
    assert again.close(timeout=10)
    assert {json.loads(v)["request_id"] for _, v in again.records()} == captured  # same ids sampled
    assert 5 < len(captured) < 35 and sink.stats().sampled_out == 80 - len(captured)


def test_the_wrapper_is_the_client_for_everything_else(sink: tee.MemorySink) -> None:
    client = fakes.anthropic_client()
    wrapped = tee.wrap(client, sink, SOURCE)
    assert isinstance(wrapped, anthropic.Anthropic) and wrapped.api_key == fakes.ANTHROPIC_KEY
    assert wrapped.messages.batches is client.messages.batches
    faster = wrapped.with_options(timeout=5.0)
    assert isinstance(faster, anthropic.Anthropic) and faster.timeout == 5.0
    faster.messages.create(**fakes.ANTHROPIC_REQUEST)
    with tee.wrap(fakes.openai_client(), sink, SOURCE) as gpt:
        gpt.chat.completions.create(**fakes.OPENAI_REQUEST)
    assert len(delivered(sink, 2)) == 2
    assert isinstance(wrapped, TeedClient)  # typed as the client it wraps; the tee's counters are its own
    assert (wrapped.sent, wrapped.dropped, wrapped.failed) == (2, 0, 0) and wrapped.flush(1)


def test_a_failure_inside_the_tee_never_reaches_the_caller(
    sink: tee.MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("snapshot exploded")

    monkeypatch.setattr("shadowlab_tee.calls.snapshot_request", broken)
    wrapped = tee.wrap(fakes.anthropic_client(), sink, SOURCE)
    assert wrapped.messages.create(**fakes.ANTHROPIC_REQUEST).content[0].text == "Hello, world!"
    stream = wrapped.messages.create(**fakes.ANTHROPIC_REQUEST, stream=True)
    assert [event.type for event in stream][-1] == "message_stop"
    stats = wrapped.stats()
    assert (stats.offered, stats.failed, stats.sent) == (2, 2, 0)
    assert stats.last_error == "tee: RuntimeError: snapshot exploded"


def test_wrap_refuses_what_it_cannot_mirror() -> None:
    memory = tee.MemorySink()
    with pytest.raises(tee.TeeConfigError, match="expects an anthropic.Anthropic.*got dict"):
        tee.wrap({}, memory)
    with pytest.raises(tee.TeeConfigError, match=r"sample_rate must be a number in \[0, 1\], got 2"):
        tee.wrap(fakes.openai_client(), memory, sample_rate=2)
    with pytest.raises(tee.TeeConfigError, match="Source.service must be a non-empty string"):
        tee.Source(service="")
    memory.close(timeout=1)
