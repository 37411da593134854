"""Fixtures for ingest tests: migrated databases, producing to Kafka, running ingest.

Captures, polling and offset helpers are in tests/support/ingest.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shadowlab import migrate
from shadowlab.db import create_engine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_url(pg_migrated: str) -> str:
    """A fresh Postgres database migrated to head."""
    return pg_migrated


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
            except (ValueError, KeyError, TypeError, RecursionError):
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
