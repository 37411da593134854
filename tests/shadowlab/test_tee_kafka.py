"""With the broker up, every mirrored call arrives on the topic, keyed by request id, passing the schema."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from kafka import KafkaConsumer

import shadowlab_tee as tee
from shadowlab.capture import Capture, parse_capture_bytes
from tests.support import fake_upstreams as fakes

pytestmark = pytest.mark.kafka


def consume(bootstrap: str, topic: str, count: int, deadline_s: float = 60.0) -> list[tuple[bytes, bytes]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    records: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + deadline_s
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += [(r.key, r.value) for r in batch]
    finally:
        consumer.close()
    return records


def mirror_every_kind_of_call(client: Any, aclient: Any, gpt: Any) -> None:
    """Nine calls: whole, raw stream, stream helper with a tool call, a failure, OpenAI and async ones."""
    client.messages.create(**fakes.ANTHROPIC_REQUEST, tee_request_id="whole")
    list(client.messages.create(**fakes.ANTHROPIC_REQUEST, stream=True, tee_request_id="raw-stream"))
    with client.messages.stream(
        **fakes.ANTHROPIC_REQUEST | {"model": fakes.TOOLS_MODEL}, tee_request_id="tools"
    ) as s:
        assert s.get_final_message().stop_reason == "tool_use"
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(
            **fakes.ANTHROPIC_REQUEST | {"model": fakes.RATE_LIMITED_MODEL}, tee_request_id="failed"
        )
    gpt.chat.completions.create(
        **fakes.OPENAI_REQUEST | {"model": fakes.TOOLS_MODEL}, tee_request_id="oa-whole"
    )
    list(
        gpt.chat.completions.create(
            **fakes.OPENAI_REQUEST,
            stream=True,
            stream_options={"include_usage": True},
            tee_request_id="oa-stream",
        )
    )

    async def run() -> None:
        await aclient.messages.create(**fakes.ANTHROPIC_REQUEST, tee_request_id="async-whole")
        async with aclient.messages.stream(
            **fakes.ANTHROPIC_REQUEST, tee_request_id="async-stream"
        ) as stream:
            await stream.get_final_message()
        async for _ in await aclient.messages.create(
            **fakes.ANTHROPIC_REQUEST, stream=True, tee_request_id="async-raw"
        ):
            pass

    asyncio.run(run())


def test_every_capture_arrives_keyed_by_request_id_and_passes_the_schema(
    kafka_bootstrap: str, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(partitions=3)
    sink = tee.KafkaSink(kafka_bootstrap, topic)
    source = tee.Source(service="checkout", environment="test")
    mirror_every_kind_of_call(
        tee.wrap(fakes.anthropic_client(), sink, source),
        tee.wrap(fakes.anthropic_client(is_async=True), sink, source),
        tee.wrap(fakes.openai_client(), sink, source),
    )
    assert sink.close(timeout=30), sink.stats()
    assert (sink.stats().sent, sink.stats().failed, sink.stats().dropped) == (9, 0, 0)

    records = consume(kafka_bootstrap, topic, 9)
    captures: dict[str, Capture] = {}
    for key, value in records:
        capture = parse_capture_bytes(value)
        assert key.decode() == capture.request_id
        captures[capture.request_id] = capture
    expected_ids = {"whole", "raw-stream", "tools", "failed", "oa-whole", "oa-stream"}
    assert len(records) == 9 and set(captures) == expected_ids | {"async-whole", "async-stream", "async-raw"}
    responses = {rid: c.response for rid, c in captures.items()}
    for rid in ("raw-stream", "tools", "oa-stream", "async-stream", "async-raw"):
        response = responses[rid]
        assert response is not None and response.ttft_ms is not None and response.text == "Hello, world!", rid
    for rid in ("tools", "oa-whole"):
        response = responses[rid]
        assert response is not None and response.tool_calls is not None
        assert [call["input"] for call in response.tool_calls] == [fakes.TOOL_INPUT]
    failed = responses["failed"]
    assert (
        failed is not None and failed.error["status_code"] == 429 and failed.error["type"] == "RateLimitError"
    )
    for secret in (fakes.ANTHROPIC_KEY, fakes.OPENAI_KEY):
        assert all(secret.encode() not in value for _, value in records)
