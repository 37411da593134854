"""OpenTelemetry GenAI spans written by hand in OTLP/HTTP JSON, and the OTLP receiver run in this process."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from ingest.dlq import DeadLetterSink
from ingest.metrics import IngestMetrics
from ingest.otlp_source import OtlpReceiver
from ingest.pipeline import PipelineConfig
from ingest.runner import Runner, RunOptions
from ingest.sink import CaptureSink
from shadowlab.db import create_engine

START = 1_765_000_000_000_000_000  # ns
QUESTION = "Which index suits range scans?"


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64 is a string in OTLP JSON
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [{"stringValue": v} for v in value]}}}
    return {"key": key, "value": {"stringValue": value}}


def span(
    span_id: str, attributes: dict[str, Any], events: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(START),
        "endTimeUnixNano": str(START + 812_500_000),
        "attributes": [attr(k, v) for k, v in attributes.items()],
        "events": events or [],
        "status": {},
    }


def export(*spans: dict[str, Any]) -> dict[str, Any]:
    resource = {"attributes": [attr("service.name", "checkout"), attr("deployment.environment.name", "prod")]}
    return {
        "resourceSpans": [
            {"resource": resource, "scopeSpans": [{"scope": {"name": "genai"}, "spans": list(spans)}]}
        ]
    }


CURRENT = {  # the GenAI semantic conventions with content capture on
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-sonnet-4-5",
    "gen_ai.request.max_tokens": 512,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.response.id": "msg_01",
    "gen_ai.response.finish_reasons": ["end_turn"],
    "gen_ai.usage.input_tokens": 21,
    "gen_ai.usage.output_tokens": 9,
    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]),
    "gen_ai.output.messages": json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "A B-tree."}],
                "finish_reason": "end_turn",
            }
        ]
    ),
    "gen_ai.conversation.id": "conv-7",
}
OPENLLMETRY = {  # Traceloop's OpenLLMetry: numbered prompt and completion attributes
    "llm.request.type": "chat",
    "gen_ai.system": "OpenAI",
    "gen_ai.request.model": "gpt-4.1",
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "Be brief.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": QUESTION,
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": "A B-tree.",
    "gen_ai.response.finish_reasons": ["stop"],
}


@contextlib.contextmanager
def receiving(db_url: str, dead_letters: DeadLetterSink) -> Iterator[tuple[OtlpReceiver, IngestMetrics]]:
    """`ingest --source otlp`'s receiver on a free port with ingest's runner behind it, in this process."""
    stop = threading.Event()
    metrics = IngestMetrics()
    source = OtlpReceiver("127.0.0.1", 0, metrics, stop)
    engine = create_engine(db_url)
    options = RunOptions(poll_timeout_s=0.05)
    runner = Runner(
        source, CaptureSink(engine), dead_letters, PipelineConfig(1 << 20), metrics, options, stop
    )
    thread = threading.Thread(target=runner.run, name="ingest-runner")
    thread.start()
    try:
        yield source, metrics
    finally:
        stop.set()
        thread.join(20)
        engine.dispose()
    assert not thread.is_alive()
