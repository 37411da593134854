"""The consumer loop: poll → prepare → store → dead-letter → commit; pause and retry while a service is down.

Offsets move only after the batch's rows and dead letters are durable (at-least-once); the unique
`request_id` turns redelivery into counted duplicates. A stop request (SIGTERM) is honoured between
batches: the batch in hand is finished and committed, then the source leaves its group. A broker that
fails a poll is retried with the same backoff; nothing is in hand then. Idle exit needs the broker to
confirm that nothing is left to read, so it never fires during a broker outage.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from ingest.dlq import DeadLetterSink, DeadLetterUnavailable
from ingest.forgetting import user_hash_of
from ingest.messages import DeadLetter, Message
from ingest.metrics import IngestMetrics
from ingest.pipeline import PipelineConfig, prepare
from ingest.sink import CaptureSink, DatabaseUnavailable, SinkResult
from ingest.sources import BrokerUnavailable, Source
from shadowlab.errors import ServiceUnavailableError
from shadowlab.retry import RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")


class StopRequested(Exception):
    """Raised inside a retry wait when the process was asked to stop; the batch stays uncommitted."""


@dataclass(frozen=True)
class RunOptions:
    batch_size: int = 1000
    poll_timeout_s: float = 0.5
    idle_exit_s: float | None = None  # stop after this long without a message (tests, benchmarks)
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0

    @property
    def retry(self) -> RetryPolicy:
        """Outages are waited out with the shared policy's backoff, for as long as they last."""
        return RetryPolicy(
            max_attempts=0, backoff_base_s=self.backoff_initial_s, backoff_max_s=self.backoff_max_s
        )


class Runner:
    def __init__(
        self,
        source: Source,
        sink: CaptureSink,
        dead_letters: DeadLetterSink,
        config: PipelineConfig,
        metrics: IngestMetrics,
        options: RunOptions = RunOptions(),
        stop: threading.Event | None = None,
    ) -> None:
        self.source, self.sink, self.dead_letters = source, sink, dead_letters
        self.config, self.metrics, self.options = config, metrics, options
        self.stop = stop or threading.Event()

    def run(self) -> None:
        """Process batches until stopped, idle for `idle_exit_s`, or the source is exhausted."""
        # Everything alive now (modules, clients, engine) lives as long as the process: out of the collector's
        # sight, full collections scan only what batches allocate (about 5 % of ingest CPU otherwise).
        gc.freeze()
        idle_since = time.monotonic()
        try:
            while not self.stop.is_set() and not self.source.exhausted:
                messages, broker_was_down = self._poll()
                if messages or broker_was_down or not self.source.ready:
                    if messages:
                        self.process_batch(messages)
                    idle_since = time.monotonic()
                elif self.options.idle_exit_s is not None and (
                    time.monotonic() - idle_since >= self.options.idle_exit_s
                ):
                    if self._nothing_left():
                        log.info("no message for %.1f s: stopping", self.options.idle_exit_s)
                        break
                    idle_since = time.monotonic()
        except StopRequested:
            log.warning(
                "stopped while a service was down: the last batch was not committed and will be read again"
            )
        finally:
            self.source.close()
            self.dead_letters.close()

    def _poll(self) -> tuple[list[Message], bool]:
        """The next messages, and whether the broker failed meanwhile (retried with backoff; not idle)."""
        failures = 0
        while True:
            try:
                messages = self.source.poll(self.options.batch_size, self.options.poll_timeout_s)
            except BrokerUnavailable as exc:
                failures += 1
                delay = self.options.retry.delay(failures, None)
                self.metrics.retry("broker")
                log.warning("broker unavailable, retrying in %.1f s: %s", delay, exc)
                if self.stop.wait(delay):
                    return [], True
                continue
            failed = failures > 0
            if failed:
                log.info("broker is back")
            return messages, failed

    def _nothing_left(self) -> bool:
        """Whether the source confirms that every message was read (a broker that cannot say: no)."""
        try:
            return self.source.caught_up()
        except BrokerUnavailable as exc:
            self.metrics.retry("broker")
            log.warning("broker unavailable, not stopping while idle: %s", exc)
            return False

    def process_batch(self, messages: Sequence[Message]) -> None:
        """Store one batch durably, then commit it; retries (paused) while the database or DLQ is down."""
        started = time.perf_counter()
        prepared = prepare(messages, self.config, self.metrics)
        result: SinkResult = self._retrying("database", lambda: self.sink.write(prepared.rows))
        self.metrics.stored(result.stored, result.duplicates)
        if result.forgotten:
            self.metrics.skipped("forgotten", result.forgotten)
        dead = self._retrying("database", lambda: self._forget_payloads([*prepared.dead, *result.refused]))
        self._publish(dead)
        for letter in dead:
            self.metrics.rejected(letter.code)
            log.info("dead-lettered %s: %s %s", letter.message.where, letter.code, letter.detail)
        self.source.commit(messages)
        self.metrics.batch_seconds(time.perf_counter() - started)

    def _forget_payloads(self, dead: list[DeadLetter]) -> list[DeadLetter]:
        """Dead letters of forgotten users keep their reason and source, never the capture's text."""
        if not dead:
            return dead
        users = {id(letter): user_hash_of(letter.message.value) for letter in dead}
        forgotten = self.sink.forgotten(users.values())
        if not forgotten:
            return dead
        return [replace(d, without_payload=True) if users[id(d)] in forgotten else d for d in dead]

    def _publish(self, dead: list[DeadLetter]) -> None:
        remaining = dead

        def attempt() -> None:
            nonlocal remaining
            try:
                self.dead_letters.publish(remaining)
            except DeadLetterUnavailable as exc:
                remaining = exc.remaining
                raise

        self._retrying("dead_letters", attempt)

    def _retrying(self, service: str, step: Callable[[], T]) -> T:
        failures = 0
        paused = False
        try:
            while True:
                try:
                    return step()
                except (DatabaseUnavailable, DeadLetterUnavailable) as exc:
                    failures += 1
                    self._wait_out(service, exc, self.options.retry.delay(failures, None), paused)
                    paused = True
        finally:
            if paused:
                self.source.resume()
                log.info("%s is back: partitions resumed", service)

    def _wait_out(self, service: str, exc: ServiceUnavailableError, delay: float, paused: bool) -> None:
        if not paused:
            self.source.pause()
        self.metrics.retry(service)
        log.warning("%s unavailable, partitions paused, retrying in %.1f s: %s", service, delay, exc)
        deadline = time.monotonic() + delay
        broker_failed = False
        while (left := deadline - time.monotonic()) > 0:
            if self.stop.is_set():
                raise StopRequested
            try:
                self.source.keep_alive(min(left, 1.0))
            except BrokerUnavailable as broker_exc:  # no member to keep alive: wait out the delay
                if not broker_failed:
                    log.warning("broker unavailable while %s is down: %s", service, broker_exc)
                    broker_failed = True
                self.stop.wait(min(left, 1.0))
