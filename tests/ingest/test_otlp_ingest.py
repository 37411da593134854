"""`shadowlab ingest --source otlp`: GenAI spans from a file or posted to the OTLP/HTTP receiver are stored
like Kafka captures (idempotently); a span without prompt content is dead-lettered with its code; the
receiver answers only once the spans are stored, refuses protobuf and bad bodies; bad flags are one line."""

from __future__ import annotations

import gzip
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app, main
from ingest.dlq import KafkaDeadLetters
from ingest.metrics import IngestMetrics
from ingest.otlp_source import OtlpReceiver
from shadowlab.db import create_engine
from shadowlab.models import CapturedRequest
from tests.support.kafka_topics import read_records
from tests.support.otlp_spans import CURRENT, OPENLLMETRY, export, receiving, span

NO_CONTENT = {k: v for k, v in CURRENT.items() if not k.startswith(("gen_ai.input", "gen_ai.output"))}
HTTP_SPAN = {"http.request.method": "POST"}
TRACE = "5b8efff798038103d269b633813fc60c"


def rows(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            t = CapturedRequest.__table__.c
            result = connection.execute(sa.select(t.request_id, t.api, t.service, t.tags))
            return [dict(row._mapping) for row in result]
    finally:
        engine.dispose()


def ingest(url: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["ingest", *args], env={"SHADOWLAB_DATABASE_URL": url})


def test_an_otlp_file_is_stored_once_and_a_span_without_prompt_is_rejected_with_its_code(
    sqlite_url: str, tmp_path: Path
) -> None:
    spans = tmp_path / "spans.jsonl"  # the Collector's file exporter: one export per line
    lines = [export(span("a1", CURRENT), span("b2", NO_CONTENT)), export(span("c3", HTTP_SPAN))]
    spans.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first = ingest(sqlite_url, "--source", "otlp", str(spans))
    assert first.exit_code == 0, first.output
    assert "consumed 3, stored 1, duplicates 0, skipped 1 (not_genai_chat 1)" in first.output
    assert "rejected 1 (no_prompt_content 1)" in first.output
    ((stored),) = rows(sqlite_url)
    assert stored["request_id"] == "msg_01" and stored["api"] == "anthropic.messages"
    assert stored["service"] == "checkout" and stored["tags"] == {"capture_source": "otlp"}
    (rejected,) = [json.loads(s) for s in (tmp_path / "spans.jsonl.rejected.jsonl").read_text().splitlines()]
    assert rejected["error"] == "no_prompt_content" and rejected["where"] == f"spans.jsonl span {TRACE}/b2"
    assert json.loads(rejected["raw"])["spanId"] == "b2"  # the span as exported, for a second look
    again = ingest(sqlite_url, "--source", "otlp", str(spans))
    assert "stored 0, duplicates 1" in again.output and len(rows(sqlite_url)) == 1


def error_lines(url: str, *args: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> list[str]:
    """`shadowlab ingest ARGS` through the console entry point: exit 2 and what it printed on stderr."""
    monkeypatch.setenv("SHADOWLAB_DATABASE_URL", url)
    monkeypatch.setattr(sys, "argv", ["shadowlab", "ingest", *args])
    with pytest.raises(SystemExit) as failed:
        main()
    assert failed.value.code == 2
    lines: list[str] = capsys.readouterr().err.splitlines()
    return lines


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--otlp-port", "4318"], "error: --otlp-port: expected with --source otlp and no INPUT (the "
         "receiver), found --source kafka"),
        (["--source", "otlp", "missing.json"], "error: INPUT: cannot read the OTLP file missing.json "
         "(No such file or directory)"),
    ],
)  # fmt: skip
def test_bad_otlp_flags_are_one_error_line(
    sqlite_url: str, args: list[str], expected: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    assert error_lines(sqlite_url, *args, monkeypatch=monkeypatch, capsys=capsys) == [expected]


def test_a_receiver_port_in_use_is_one_error_line(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        lines = error_lines(
            sqlite_url, "--source", "otlp", "--otlp-port", str(port), monkeypatch=monkeypatch, capsys=capsys
        )
    assert lines == [f"error: --otlp-port {port}: cannot listen on 127.0.0.1:{port} (Address already in use)"]


@pytest.fixture
def receiver(pg_url: str, kafka_bootstrap: str, kafka_topic: Any) -> Iterator[tuple[OtlpReceiver, str]]:
    """The receiver with ingest's runner behind it: Postgres, and the real Kafka dead-letter topic."""
    dlq = kafka_topic(prefix="otlp-dlq")
    with receiving(pg_url, KafkaDeadLetters(kafka_bootstrap, dlq)) as (source, _):
        yield source, dlq


def post(receiver: OtlpReceiver, body: bytes, **headers: str) -> httpx.Response:
    url = f"http://127.0.0.1:{receiver.port}/v1/traces"
    return httpx.post(url, content=body, headers={"Content-Type": "application/json", **headers}, timeout=30)


def test_the_receiver_answers_once_spans_are_stored_dead_letters_like_kafka_and_refuses_protobuf(
    receiver: tuple[OtlpReceiver, str], pg_url: str, kafka_bootstrap: str
) -> None:
    source, dlq = receiver
    body = gzip.compress(json.dumps(export(span("a1", CURRENT), span("b2", NO_CONTENT))).encode())
    answer = post(source, body, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedSpans"] == 1
    assert [r["request_id"] for r in rows(pg_url)] == ["msg_01"]  # stored before the answer
    ((value, headers),) = read_records(kafka_bootstrap, dlq, 1)
    assert headers["shadowlab.error"] == "no_prompt_content"
    assert headers["shadowlab.detail"].startswith("no prompt content")
    assert headers["shadowlab.source"] == f"otlp span {TRACE}/b2" and json.loads(value)["spanId"] == "b2"
    again = post(source, json.dumps(export(span("a1", CURRENT), span("d4", OPENLLMETRY))).encode())
    assert again.status_code == 200 and again.json() == {}  # a resent export stores nothing twice
    assert sorted(r["request_id"] for r in rows(pg_url)) == [f"{TRACE}-d4", "msg_01"]
    protobuf = post(source, b"\x0a\x00", **{"Content-Type": "application/x-protobuf"})
    assert protobuf.status_code == 415 and "set the exporter's encoding to json" in protobuf.json()["message"]
    not_json = post(source, b"{not json")
    assert not_json.status_code == 400 and not_json.json()["message"].startswith("not an OTLP JSON trace")
    assert post(source, b'{"spans": []}').status_code == 400
    wrong_path = httpx.post(f"http://127.0.0.1:{source.port}/v1/logs", content=b"{}", timeout=10)
    assert wrong_path.status_code == 404


def test_the_receiver_answers_503_until_spans_are_stored_and_when_too_many_wait() -> None:
    stop = threading.Event()
    receiver = OtlpReceiver("127.0.0.1", 0, IngestMetrics(), stop, max_pending=1, answer_within_s=0.2)
    body = json.dumps(export(span("a1", CURRENT))).encode()
    try:
        late = post(receiver, body)  # nothing stores it: the exporter must send it again
        assert late.status_code == 503 and late.headers["Retry-After"] == "1"
        behind = post(receiver, body)  # its span still waits, and one may
        assert behind.status_code == 503 and "behind" in behind.json()["message"]
        receiver.commit(receiver.poll(10, 0))
        storing = threading.Thread(target=lambda: receiver.commit(receiver.poll(10, 10)))
        storing.start()
        assert post(receiver, body).status_code == 200  # answered once committed
        storing.join(10)
    finally:
        receiver.close()
