"""The broker fails while ingest runs: polls that raise, a broker that stops answering, errors while paused.

While its broker is down kafka-python returns empty polls, raises `KafkaConnectionError` from some of them
and times out offset look-ups. `OnCueConsumer` wraps a real `KafkaConsumer` (real topic, group and Postgres)
and does the same on cue; it reaches the code through `KafkaSource(consumer_factory=...)`. The shared broker
itself is never stopped: other tests use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from ingest.dlq import DeadLetterSink, DeadLetterUnavailable, FileDeadLetters
from ingest.messages import DeadLetter
from ingest.metrics import IngestMetrics
from ingest.pipeline import PipelineConfig
from ingest.runner import Runner, RunOptions
from ingest.sink import CaptureSink
from ingest.sources import KafkaSource
from shadowlab.capture import DEFAULT_MAX_BYTES
from shadowlab.db import create_engine
from tests.support.ingest import count_rows, encode, make_capture, unique

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.faults, pytest.mark.timeout(120)]
N = 50


class OnCueConsumer:
    """A real `KafkaConsumer` that, once it has returned its first batch, fails as told.

    `failing_polls`: that many polls raise `KafkaConnectionError`. `failed_checks_to_recover`: the broker is
    down (polls come back empty, end-offset look-ups time out) until that many look-ups have failed.
    `failing_paused_polls`: that many polls made while partitions are paused raise.
    `real_failures` counts what the real broker failed besides (a poll, a position or end-offset look-up that
    timed out on a loaded machine): the runner retries those as it retries the cues, so a test's count of
    retries is the cues' plus these.
    """

    def __init__(
        self,
        *,
        failing_polls: int = 0,
        failed_checks_to_recover: int = 0,
        failing_paused_polls: int = 0,
        **config: Any,
    ) -> None:
        from kafka import KafkaConsumer

        self._consumer = KafkaConsumer(**config)
        self.failing_polls, self.failing_paused_polls = failing_polls, failing_paused_polls
        self.checks_to_recover = failed_checks_to_recover
        self.batches = self.real_failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        from kafka.errors import KafkaConnectionError

        if self.failing_paused_polls and self._consumer.paused():
            self.failing_paused_polls -= 1
            raise KafkaConnectionError("on cue: connection refused while paused")
        if self.batches and self.failing_polls:
            self.failing_polls -= 1
            raise KafkaConnectionError("on cue: connection refused")
        if self.batches and self.checks_to_recover:
            return {}
        # A failed poll while paused is waited out, not retried (`Runner._wait_out`): not counted.
        counted = not self._consumer.paused()
        polled: dict[Any, list[Any]] = self._real(
            lambda: self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records), counted=counted
        )
        self.batches += bool(polled)
        return polled

    def end_offsets(self, partitions: Any, timeout_ms: int | None = None) -> Any:
        from kafka.errors import KafkaTimeoutError

        if self.batches and self.checks_to_recover:
            self.checks_to_recover -= 1
            raise KafkaTimeoutError("on cue: failed to get offsets")
        return self._real(lambda: self._consumer.end_offsets(partitions, timeout_ms=timeout_ms))

    def position(self, partition: Any, timeout_ms: int | None = None) -> Any:
        return self._real(lambda: self._consumer.position(partition, timeout_ms=timeout_ms))

    def _real(self, call: Callable[[], Any], *, counted: bool = True) -> Any:
        from kafka.errors import KafkaError

        try:
            return call()
        except KafkaError:
            self.real_failures += counted
            raise


class DeadLettersDownOnce:
    """Writes dead letters to a file, but the first publish fails as if the DLQ topic were down."""

    def __init__(self, path: Path) -> None:
        self._file, self.failed = FileDeadLetters(path), False

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        if letters and not self.failed:
            self.failed = True
            raise DeadLetterUnavailable("on cue: dead-letter topic down", letters)
        self._file.publish(letters)

    def close(self) -> None:
        self._file.close()


def _run(
    pg_url: str,
    bootstrap: str,
    topic: str,
    tmp_path: Path,
    cues: dict[str, int],
    dead_letters: DeadLetterSink | None = None,
) -> tuple[OnCueConsumer, IngestMetrics]:
    """Ingest `topic` in this process until idle for 0.5 s; the consumer fails as `cues` say."""
    made: list[OnCueConsumer] = []

    def consumer(**config: Any) -> OnCueConsumer:
        made.append(OnCueConsumer(**cues, **config))
        return made[-1]

    metrics, engine = IngestMetrics(), create_engine(pg_url)
    source = KafkaSource(
        bootstrap, topic, unique("g"), max_poll_records=10, metrics=metrics, consumer_factory=consumer
    )
    options = RunOptions(
        batch_size=10, poll_timeout_s=0.2, idle_exit_s=0.5, backoff_initial_s=0.01, backoff_max_s=0.05
    )
    dead = dead_letters or FileDeadLetters(tmp_path / "rejected.jsonl")
    try:
        Runner(source, CaptureSink(engine), dead, PipelineConfig(DEFAULT_MAX_BYTES), metrics, options).run()
    finally:
        engine.dispose()
    return made[0], metrics


def _retries(metrics: IngestMetrics, service: str) -> float | None:
    return metrics.registry.get_sample_value("shadowlab_ingest_retries_total", {"service": service})


def test_polls_that_raise_are_retried_with_backoff_and_nothing_is_lost(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    produce: Any,
    tmp_path: Path,
) -> None:
    topic = kafka_topic(partitions=2)
    produce(topic, [encode(make_capture(i)) for i in range(N)])

    consumer, metrics = _run(pg_url, kafka_bootstrap, topic, tmp_path, {"failing_polls": 3})

    assert consumer.failing_polls == 0  # every cue was played
    # each raising poll was retried once, none given up on (and whatever the real broker failed, once each)
    assert _retries(metrics, "broker") == 3 + consumer.real_failures
    assert count_rows(pg_url) == N  # and the broker, back, delivered the rest


def test_idle_exit_waits_for_the_broker_to_confirm_nothing_is_left(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    produce: Any,
    tmp_path: Path,
) -> None:
    topic = kafka_topic(partitions=1)
    produce(topic, [encode(make_capture(i)) for i in range(N)])

    # After the first batch the broker goes quiet: empty polls for longer than --idle-exit, and the
    # end-offset look-up fails twice before it answers again.
    consumer, metrics = _run(pg_url, kafka_bootstrap, topic, tmp_path, {"failed_checks_to_recover": 2})

    assert count_rows(pg_url) == N  # it did not stop with 40 captures unread
    assert consumer.checks_to_recover == 0
    # each failed look-up kept it running, counted as a retry (as is whatever the real broker failed)
    assert _retries(metrics, "broker") == 2 + consumer.real_failures


def test_a_broker_error_while_paused_for_another_outage_is_waited_out(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    produce: Any,
    tmp_path: Path,
) -> None:
    topic = kafka_topic(partitions=1)
    values = [encode(make_capture(i)) for i in range(N)]
    produce(topic, [values[0], b"not json", *values[1:]])
    dead = DeadLettersDownOnce(tmp_path / "rejected.jsonl")

    consumer, metrics = _run(
        pg_url, kafka_bootstrap, topic, tmp_path, {"failing_paused_polls": 1}, dead_letters=dead
    )

    assert consumer.failing_paused_polls == 0 and dead.failed
    assert count_rows(pg_url) == N
    assert '"error": "not_json"' in (tmp_path / "rejected.jsonl").read_text()
    assert _retries(metrics, "dead_letters") == 1
    # waited out within the pause, not retried as an outage (only what the real broker failed besides)
    assert (_retries(metrics, "broker") or 0) == consumer.real_failures
