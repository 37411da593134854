"""Where captures come from: a Kafka consumer group (manual commits, pause/resume) or a JSONL file."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ingest.messages import Message
from ingest.metrics import IngestMetrics
from shadowlab.errors import ServiceUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")


class BrokerUnavailable(ServiceUnavailableError):
    """The broker did not answer a poll or an offset look-up (or refused it); the runner retries later."""


class Source(Protocol):
    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        """The next messages; empty when none arrived within the timeout. Raises `BrokerUnavailable`."""

    def commit(self, messages: Sequence[Message]) -> None:
        """Mark `messages` as done (after their rows and dead letters are durable)."""

    def pause(self) -> None: ...
    def keep_alive(self, seconds: float) -> None:
        """Wait about `seconds` while paused, staying a live member of the group (if any).

        Raises `BrokerUnavailable`."""

    def resume(self) -> None: ...
    def close(self) -> None: ...
    def caught_up(self) -> bool:
        """True when the source confirms nothing is left to read; raises `BrokerUnavailable` if it cannot."""

    @property
    def exhausted(self) -> bool:
        """True when no message will ever come again (end of a file)."""

    @property
    def ready(self) -> bool:
        """True once messages can arrive (a group member has partitions); idle time counts only then."""


class KafkaSource:
    """A member of a consumer group; offsets are committed only by `commit`, never automatically."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        *,
        max_poll_records: int = 1000,
        metrics: IngestMetrics | None = None,
        timeout_s: float = 10.0,
        consumer_factory: Callable[..., Any] | None = None,
    ) -> None:
        """`consumer_factory` makes the consumer from kafka-python's keyword arguments (`KafkaConsumer`)."""
        from kafka import KafkaConsumer

        self.topic = topic
        self._metrics = metrics
        self._paused = False
        self._timeout_ms = max(30_000, int(timeout_s * 1000))
        self._check_timeout_ms = int(timeout_s * 1000)  # `caught_up`: how long the broker may take to answer
        self._consumer = (consumer_factory or KafkaConsumer)(
            bootstrap_servers=bootstrap.split(","),
            group_id=group,
            client_id=f"shadowlab-ingest-{group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            # A crashed member's partitions move to the others after this (kafka-python's default: 45 s).
            session_timeout_ms=10_000,
            request_timeout_ms=max(30_000, int(timeout_s * 1000) + 1000),
        )
        self._consumer.subscribe([topic], listener=_rebalance_listener(self))

    exhausted = False

    @property
    def ready(self) -> bool:
        return bool(self._consumer.assignment())

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        polled = _from_broker(
            "poll", lambda: self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        )
        messages = [
            Message(r.value if r.value is not None else b"", r.key, r.topic, r.partition, r.offset)
            for records in polled.values()
            for r in records
        ]
        self._record_lag(polled)
        return messages

    def _record_lag(self, polled: dict[Any, list[Any]]) -> None:
        if self._metrics is None:
            return
        for tp, records in polled.items():
            high = self._consumer.highwater(tp)
            if high is not None and records:
                self._metrics.lag(tp.topic, tp.partition, max(0, high - records[-1].offset - 1))

    def commit(self, messages: Sequence[Message]) -> None:
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata, TopicPartition

        next_offsets: dict[TopicPartition, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            next_offsets[tp] = max(next_offsets.get(tp, 0), m.offset + 1)
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in next_offsets.items()}
        try:
            self._consumer.commit(offsets, timeout_ms=self._timeout_ms)
        except (CommitFailedError, KafkaError) as exc:
            # The rows are stored; whoever owns the partition now reads them again and finds duplicates.
            log.warning("offset commit failed, messages will be read again: %s", exc)

    def pause(self) -> None:
        self._paused = True
        self._consumer.pause(*self._consumer.assignment())

    def keep_alive(self, seconds: float) -> None:
        # poll() while paused keeps this member in the group; nothing should come back, but a partition
        # assigned during a rebalance may slip through: rewind it so no message is skipped.
        self._consumer.pause(*self._consumer.assignment())
        polled = _from_broker("poll", lambda: self._consumer.poll(timeout_ms=int(seconds * 1000)))
        for tp, records in polled.items():
            if records:
                self._consumer.seek(tp, records[0].offset)

    def caught_up(self) -> bool:
        """Every assigned partition's position is at its end offset, as the broker says now."""
        assigned = list(self._consumer.assignment())
        timeout_ms = self._check_timeout_ms

        def positions_and_ends() -> tuple[dict[Any, int | None], dict[Any, int]]:
            positions = {tp: self._consumer.position(tp, timeout_ms=timeout_ms) for tp in assigned}
            return positions, self._consumer.end_offsets(assigned, timeout_ms=timeout_ms)

        positions, ends = _from_broker("end offsets", positions_and_ends)
        return all(_at_end(positions[tp], ends.get(tp)) for tp in assigned)

    def resume(self) -> None:
        self._paused = False
        self._consumer.resume(*self._consumer.paused())

    def close(self) -> None:
        self._consumer.close(autocommit=False)  # leaves the group so its partitions move at once


def _at_end(position: int | None, end: int | None) -> bool:
    return position is not None and end is not None and position >= end


def _from_broker(what: str, call: Callable[[], T]) -> T:
    """`call()`, with kafka-python's errors (connection refused, timeouts) as one `BrokerUnavailable`."""
    from kafka.errors import KafkaError

    try:
        return call()
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka {what}: {exc}") from exc


def _rebalance_listener(source: KafkaSource) -> Any:
    from kafka import ConsumerRebalanceListener

    class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
        """Keeps newly assigned partitions paused while the source is paused (the database is down)."""

        def on_partitions_revoked(self, revoked: Any) -> None:
            log.info("partitions revoked: %s", sorted((tp.topic, tp.partition) for tp in revoked))

        def on_partitions_assigned(self, assigned: Any) -> None:
            log.info("partitions assigned: %s", sorted((tp.topic, tp.partition) for tp in assigned))
            if source._paused and assigned:
                source._consumer.pause(*assigned)

    return Rebalance()


class ReadOnce:
    """What a source read once from a file shares: nothing to commit (a rerun stores nothing twice because
    of the unique `request_id`), pause or resume; idle waits end early on stop; done at the file's end."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self._stop = stop or threading.Event()
        self.exhausted = False
        self.ready = True

    def commit(self, messages: Sequence[Message]) -> None:
        return None

    def pause(self) -> None:
        return None

    def keep_alive(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def resume(self) -> None:
        return None

    def caught_up(self) -> bool:
        return True  # a file has nothing more to say than its content; the runner stops at its end

    def close(self) -> None:
        return None


class FileSource(ReadOnce):
    """Lines of a JSONL file (blank lines skipped); a line's number is its offset."""

    def __init__(self, path: Path, stop: threading.Event | None = None) -> None:
        super().__init__(stop)
        self.path = path
        self._file = path.open("rb")
        self._lines: Iterator[tuple[int, bytes]] = enumerate(self._file, start=1)

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        out: list[Message] = []
        for number, line in self._lines:
            value = line.rstrip(b"\r\n")
            if value.strip():
                out.append(Message(value, None, None, None, number))
                if len(out) >= max_records:
                    return out
        self.exhausted = True
        return out

    def close(self) -> None:
        self._file.close()
