"""The consumer loop: poll → prepare → store → dead-letter → commit; pause and retry while a service is down.

Offsets move only after the batch's rows and dead letters are durable (at-least-once); the unique
`request_id` turns redelivery into counted duplicates. While one batch is inserted (by one writer thread:
psycopg lets go of the GIL while the database works), the next is polled and prepared; batches are still
finished and committed one at a time, in order. A rebalance during that poll may take the partitions of
the batch being inserted: its commit then fails and the new owner reads it again (counted duplicates).
A stop request (SIGTERM) is honoured between batches: the batches in hand are finished and committed,
then the source leaves its group. A broker that fails a poll is retried with the same backoff. Idle exit
needs the broker to confirm that nothing is left to read, so it never fires during a broker outage.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

from ingest.dlq import DeadLetterSink, DeadLetterUnavailable
from ingest.forgetting import user_hash_of
from ingest.messages import DeadLetter, Message
from ingest.metrics import IngestMetrics
from ingest.pipeline import PipelineConfig, Prepared, prepare
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
    overlap_writes: bool = True  # insert a batch in a writer thread while the next one is prepared (Postgres)

    @property
    def retry(self) -> RetryPolicy:
        """Outages are waited out with the shared policy's backoff, for as long as they last."""
        return RetryPolicy(
            max_attempts=0, backoff_base_s=self.backoff_initial_s, backoff_max_s=self.backoff_max_s
        )


@dataclass(frozen=True)
class _InFlight:
    """A batch whose rows the writer thread is inserting; dead letters and the commit come after."""

    messages: Sequence[Message]
    prepared: Prepared
    write: Future[SinkResult]
    started: float


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
        self._in_flight: _InFlight | None = None
        self._writer: ThreadPoolExecutor | None = None

    def run(self) -> None:
        """Process batches until stopped, idle for `idle_exit_s`, or the source is exhausted."""
        # Everything alive now (modules, clients, engine) lives as long as the process: out of the collector's
        # sight, full collections scan only what batches allocate (about 5 % of ingest CPU otherwise).
        gc.freeze()
        if self.options.overlap_writes and self.sink.overlaps:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="ingest-writer")
        idle_since = time.monotonic()
        try:
            while not self.stop.is_set() and not self.source.exhausted:
                messages, broker_was_down = self._poll()
                if not messages:
                    self._finish_in_flight()  # nothing more came: no batch waits for its commit
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
            self._finish_in_flight()
        except StopRequested:
            log.warning(
                "stopped while a service was down: the last batch was not committed and will be read again"
            )
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
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
        """Prepare one batch and store it durably, then commit it (after the batch before it, if one is in
        flight); retries (paused) while the database or DLQ is down. With `overlap_writes` its rows are
        inserted by the writer thread while the next batch is prepared."""
        started = time.perf_counter()
        prepared = prepare(messages, self.config, self.metrics)
        self._finish_in_flight()
        if self._writer is None:
            result = self._retrying("database", lambda: self.sink.write(prepared.rows))
            self._finish(messages, prepared, result, started)
        else:
            write = self._writer.submit(self.sink.write, prepared.rows)
            self._in_flight = _InFlight(messages, prepared, write, started)

    def _finish_in_flight(self) -> None:
        """Wait for the batch in flight to be stored (retrying here if its write failed), then finish it."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return
        try:
            result = batch.write.result()
        except DatabaseUnavailable as exc:
            result = self._retrying("database", lambda: self.sink.write(batch.prepared.rows), failed=exc)
        self._finish(batch.messages, batch.prepared, result, batch.started)

    def _finish(
        self, messages: Sequence[Message], prepared: Prepared, result: SinkResult, started: float
    ) -> None:
        """Count a stored batch, publish its dead letters, commit it."""
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

    def _retrying(
        self, service: str, step: Callable[[], T], failed: ServiceUnavailableError | None = None
    ) -> T:
        """`step()`, waited out and tried again while `service` is down; `failed`: its first try failed so."""
        failures = 0
        paused = False
        try:
            while True:
                if failed is None:
                    try:
                        return step()
                    except (DatabaseUnavailable, DeadLetterUnavailable) as exc:
                        failed = exc
                failures += 1
                self._wait_out(service, failed, self.options.retry.delay(failures, None), paused)
                paused, failed = True, None
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
