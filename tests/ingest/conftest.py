"""Fixtures for ingest tests: capture factory, migrated databases, producing to Kafka, running ingest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shadowlab import migrate
from shadowlab.db import create_engine

ROOT = Path(__file__).resolve().parents[2]


def make_capture(i: int, *, text: str = "", **overrides: Any) -> dict[str, Any]:
    """A valid schema-v1 capture with request id `req-<i>`; `text` goes into the user message."""
    capture: dict[str, Any] = {
        "schema_version": 1,
        "request_id": f"req-{i:08d}",
        "captured_at": "2025-01-31T12:00:00+00:00",
        "source": {"service": "support", "route": "/chat", "environment": "prod", "user_hash": f"u{i % 7}"},
        "api": "anthropic.messages",
        "request": {
            "model": "claude-test",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text or f"question number {i}"}],
        },
        "response": {"text": f"answer {i}", "stop_reason": "end_turn", "usage": {"input_tokens": 5}},
    }
    capture.update(overrides)
    return capture


def encode(capture: dict[str, Any]) -> bytes:
    return json.dumps(capture).encode()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    """Poll `condition` until true; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def count_rows(url: str, table: str = "captured_requests") -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
    except sa.exc.OperationalError:
        return -1
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A fresh Postgres database migrated to head."""
    engine = create_engine(pg_database)
    migrate.upgrade(engine)
    engine.dispose()
    return pg_database


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ingest.db'}"
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def produce(kafka_bootstrap: str) -> Iterator[Callable[[str, list[bytes]], None]]:
    """Send values to a topic (key = request_id when the value is a capture), acks=all, flushed."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024
    )

    def send(topic: str, values: list[bytes]) -> None:
        for value in values:
            try:
                key = str(json.loads(value)["request_id"]).encode()
            except (ValueError, KeyError, TypeError):
                key = None
            producer.send(topic, value=value, key=key)
        producer.flush()

    yield send
    producer.close()


@pytest.fixture
def ingest_process(kafka_bootstrap: str) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `shadowlab ingest` as a subprocess (killed at teardown if still running)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        db_url: str, *args: str, log: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **(env or {}),
            "SHADOWLAB_DATABASE_URL": db_url,
            "SHADOWLAB_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "SHADOWLAB_LOG_LEVEL": "INFO",
        }
        out = log.open("wb") if log else None
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "ingest", *args],
                cwd=ROOT,
                env=env,
                stdout=out or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        finally:
            if out is not None:
                out.close()  # the child has its own copy
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def group_offsets(bootstrap: str, group: str) -> dict[int, int]:
    """Committed offsets of `group`, by partition."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group)
    finally:
        admin.close()
    by_group = offsets.get(group, offsets) if isinstance(offsets, dict) else offsets
    return {tp.partition: meta.offset for tp, meta in by_group.items()}


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Helpers:
    """The module's helper functions, for tests (importlib mode cannot import conftest by name)."""

    make_capture = staticmethod(make_capture)
    encode = staticmethod(encode)
    wait_for = staticmethod(wait_for)
    count_rows = staticmethod(count_rows)
    group_offsets = staticmethod(group_offsets)
    end_offsets = staticmethod(end_offsets)
    unique = staticmethod(unique)


@pytest.fixture
def helpers() -> type[Helpers]:
    return Helpers
