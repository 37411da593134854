"""Acceptance (issue 24): a GenAI span made with the real OpenTelemetry SDK and sent by its own OTLP/HTTP JSON
exporter to `ingest --source otlp`'s receiver is stored as the same row as the tee's capture of the same
Anthropic call (same request, prompt fingerprint, answer and usage)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
import sqlalchemy as sa
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from typer.testing import CliRunner

import shadowlab_tee as tee
from cli.main import app
from ingest.dlq import FileDeadLetters
from ingest.otlp_source import OtlpReceiver
from shadowlab.apis import api_shape
from shadowlab.db import create_engine
from shadowlab.models import CapturedRequest
from simulator import ProfileSet, running_simulator
from tests.support.otlp_spans import receiving
from tests.support.sim_profiles import FAST
from tests.support.tee_captures import delivered

QUESTION = "Which index suits range scans?"
CALL: dict[str, Any] = {
    "model": "claude-sonnet-4-5", "max_tokens": 256, "stop_sequences": ["Q:"], "system": "Be brief.",
    "messages": [{"role": "user", "content": QUESTION}],
}  # fmt: skip


def teed_call(tmp_path: Path) -> tuple[anthropic.types.Message, Path]:
    """The call made with the real Anthropic SDK through the tee against the simulator; its capture file."""
    sink = tee.MemorySink()
    with (
        running_simulator(seed=3, profiles=ProfileSet(default=FAST)) as sim,
        anthropic.Anthropic(base_url=sim.base_url, api_key="sk-ant-test", max_retries=0) as sdk,
    ):
        answer = tee.wrap(sdk, sink, "checkout").messages.create(**CALL)
        (capture,) = delivered(sink, 1)
    sink.close(timeout=5)
    path = tmp_path / "teed.jsonl"
    path.write_bytes(sink.records()[0][1] + b"\n")
    assert capture.request_id != answer.id
    return answer, path


def instrumented_span(answer: anthropic.types.Message) -> list[Any]:
    """The span a GenAI instrumentation records for that call (content capture on), from the real SDK."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("genai-instrumentation")
    text = "".join(block.text for block in answer.content if block.type == "text")
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": CALL["model"],
        "gen_ai.request.max_tokens": CALL["max_tokens"],
        "gen_ai.request.stop_sequences": CALL["stop_sequences"],
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": CALL["system"]}]),
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
        ),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "end_turn"}]
        ),
        "gen_ai.response.id": answer.id,
        "gen_ai.response.model": answer.model,
        "gen_ai.response.finish_reasons": [str(answer.stop_reason)],
        "gen_ai.usage.input_tokens": answer.usage.input_tokens,
        "gen_ai.usage.output_tokens": answer.usage.output_tokens,
    }
    with tracer.start_as_current_span(f"chat {CALL['model']}", kind=SpanKind.CLIENT, attributes=attributes):
        pass
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return spans


@pytest.fixture
def receiver(pg_url: str, tmp_path: Path) -> Iterator[OtlpReceiver]:
    """The receiver with ingest's runner behind it, writing to Postgres; nothing may be rejected."""
    with receiving(pg_url, FileDeadLetters(tmp_path / "dead.jsonl")) as (source, metrics):
        yield source
    assert metrics.tally.rejected == {}


def stored(url: str, request_id: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            t = CapturedRequest.__table__.c
            columns = (t.api, t.model, t.service, t.request, t.response, t.prompt_fingerprint, t.prompt_chars)
            row = connection.execute(sa.select(*columns).where(t.request_id == request_id)).one()
            return dict(row._mapping)
    finally:
        engine.dispose()


def test_an_sdk_exported_genai_span_is_stored_as_the_same_row_as_the_tee_capture(
    receiver: OtlpReceiver, pg_url: str, tmp_path: Path
) -> None:
    answer, teed = teed_call(tmp_path)
    result = CliRunner().invoke(
        app, ["ingest", "--source", "file", str(teed)], env={"SHADOWLAB_DATABASE_URL": pg_url}
    )
    assert "stored 1" in result.output, result.output
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{receiver.port}/v1/traces", timeout=20)
    assert exporter.export(instrumented_span(answer)) is SpanExportResult.SUCCESS  # answered once stored
    exporter.shutdown()
    tee_id = json.loads(teed.read_text())["request_id"]
    from_tee, from_span = stored(pg_url, tee_id), stored(pg_url, answer.id)
    same = ("api", "model", "service", "request", "prompt_fingerprint", "prompt_chars")
    assert {k: from_span[k] for k in same} == {k: from_tee[k] for k in same}
    assert from_span["request"] == CALL
    for key in ("text", "stop_reason"):
        assert from_span["response"][key] == from_tee["response"][key]
    usage = api_shape("anthropic.messages").usage
    assert usage(from_span["response"]["usage"]) == usage(from_tee["response"]["usage"])
    assert usage(from_span["response"]["usage"]).output_tokens == answer.usage.output_tokens > 0
