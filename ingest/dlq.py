"""Dead letters: topic `<topic>.dlq` (original bytes + reason headers), or `<input>.rejected.jsonl` for files.

`publish()` returns only when every dead letter of the batch is durable; offsets are committed after it.
A letter always fits its topic: sized on key + headers + value, its value is cut when needed, and when even
that is not enough (a huge key) or the topic refuses it as too large anyway, it goes without its payload:
reason and source coordinates only. A too-large letter must never wedge its partition.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ingest.messages import DeadLetter
from shadowlab.broker import TOPIC_MAX_MESSAGE_BYTES
from shadowlab.errors import ConfigError, ServiceUnavailableError

log = logging.getLogger(__name__)
HEADER_ERROR = "shadowlab.error"
HEADER_DETAIL = "shadowlab.detail"
HEADER_SOURCE = "shadowlab.source"
HEADER_TRUNCATED = "shadowlab.truncated"
# A letter's size as kafka-python estimates it (key, value, headers, record and batch overhead), kept below
# the topic's `max.message.bytes` by a margin for what the estimate may miss.
RECORD_ROOM = TOPIC_MAX_MESSAGE_BYTES - 16 * 1024
# A field path in the detail can be as long as a JSON key: the header keeps its start.
DETAIL_ROOM = 1024


def headers_of(dead: DeadLetter) -> list[tuple[str, bytes]]:
    """The reason headers of a dead letter (DESIGN §3); the detail cut to `DETAIL_ROOM` bytes."""
    detail = dead.detail.encode("utf-8", "replace")
    if len(detail) > DETAIL_ROOM:
        ellipsis = "…".encode()
        detail = detail[: DETAIL_ROOM - len(ellipsis)].decode("utf-8", "ignore").encode() + ellipsis
    return [
        (HEADER_ERROR, dead.code.encode()),
        (HEADER_DETAIL, detail),
        (HEADER_SOURCE, dead.message.where.encode("utf-8", "replace")),
    ]


@dataclass(frozen=True)
class Letter:
    """One record for the dead-letter topic."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def size(self) -> int:
        """Bytes, as kafka-python's producer estimates them before checking its `max_request_size`."""
        from kafka.record.default_records import DefaultRecordBatchBuilder

        return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(self.key, self.value, list(self.headers)))


def letter_of(dead: DeadLetter, room: int = RECORD_ROOM) -> Letter:
    """The dead letter as a record of at most `room` bytes: whole, with its value cut, or without payload."""
    from kafka.record.util import size_of_varint

    if dead.without_payload:
        return minimal_letter(dead)
    key, value = dead.message.key, dead.message.value
    whole = Letter(key, value, tuple(headers_of(dead)))
    if whole.size <= room:
        return whole
    # Measured with the longest header text the cut can have and an empty value, whose length takes 1 byte.
    longest = (HEADER_TRUNCATED, f"first {len(value)} of {len(value)} bytes".encode())
    keep = room - Letter(key, b"", (*whole.headers, longest)).size - (size_of_varint(len(value)) - 1)
    if keep <= 0:
        return minimal_letter(dead)
    truncated = (HEADER_TRUNCATED, f"first {keep} of {len(value)} bytes".encode())
    return Letter(key, value[:keep], (*whole.headers, truncated))


def minimal_letter(dead: DeadLetter) -> Letter:
    """The reason and where the message came from, without its key and value."""
    key, value = dead.message.key or b"", dead.message.value
    dropped = f"payload dropped: key of {_bytes(len(key))}, value of {_bytes(len(value))}"
    return Letter(None, b"", (*headers_of(dead), (HEADER_TRUNCATED, dropped.encode())))


def _bytes(n: int) -> str:
    return "1 byte" if n == 1 else f"{n} bytes"


class DeadLetterUnavailable(ServiceUnavailableError):
    """Some dead letters could not be made durable (broker down, disk full); `remaining` are retried."""

    def __init__(self, message: str, remaining: Sequence[DeadLetter]) -> None:
        super().__init__(message)
        self.remaining = list(remaining)


class DeadLetterSink(Protocol):
    def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Return once every letter is durable, else raise `DeadLetterUnavailable` with those that are not."""

    def close(self) -> None: ...


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class KafkaDeadLetters:
    """Produces dead letters with acks=all, each sized to fit the topic (`letter_of`)."""

    def __init__(self, bootstrap: str, topic: str, *, timeout_s: float = 30.0) -> None:
        from kafka import KafkaProducer

        self.topic = topic
        self.timeout_s = timeout_s
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap.split(","),
            acks="all",
            linger_ms=5,
            max_request_size=TOPIC_MAX_MESSAGE_BYTES,
            max_block_ms=int(timeout_s * 1000),
            client_id="shadowlab-ingest-dlq",
            # kafka-python 3.0 puts an idempotent producer in a fatal state (every later send fails) when the
            # broker refuses a batch for good (a letter too large for the topic). The DLQ is at-least-once.
            enable_idempotence=False,
        )

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        refused, failed, reasons = self._produce([(dead, letter_of(dead)) for dead in letters])
        if refused:  # the topic's limit is below the one assumed (configured apart): send reason and source
            for dead in refused:
                log.warning(
                    "dead letter for %s refused as too large by %s: sent without its payload",
                    dead.message.where,
                    self.topic,
                )
            refused, failed_again, more_reasons = self._produce([(d, minimal_letter(d)) for d in refused])
            for dead in refused:
                log.error(
                    "dead letter for %s refused by %s even without its payload, dropped: %s %s",
                    dead.message.where,
                    self.topic,
                    dead.code,
                    dead.detail[:DETAIL_ROOM],
                )
            failed, reasons = [*failed, *failed_again], reasons | more_reasons
        if failed:
            raise DeadLetterUnavailable(
                f"dead-letter topic {self.topic}: {len(failed)} not sent ({', '.join(sorted(reasons))})",
                failed,
            )

    def _produce(
        self, letters: Sequence[tuple[DeadLetter, Letter]]
    ) -> tuple[list[DeadLetter], list[DeadLetter], set[str]]:
        """Send and flush: the letters refused as too large, those not sent for other reasons, and why."""
        from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

        sent: list[tuple[DeadLetter, Any]] = []
        try:
            for dead, letter in letters:
                sent.append((dead, self._send(letter)))
            self._producer.flush(timeout=self.timeout_s)
        except KafkaError as exc:
            # A letter whose send is still in flight may arrive later as well: the DLQ is at-least-once.
            unsent = [d for d, f in sent if not f.succeeded()] + [d for d, _ in letters[len(sent) :]]
            return [], unsent, {repr(exc)}
        refused: list[DeadLetter] = []
        failed: list[DeadLetter] = []
        reasons: set[str] = set()
        for dead, future in sent:
            if isinstance(future.exception, MessageSizeTooLargeError | RecordListTooLargeError):
                refused.append(dead)
            elif not future.succeeded():
                failed.append(dead)
                reasons.add(repr(future.exception))
        return refused, failed, reasons

    def _send(self, letter: Letter) -> Any:
        from kafka.errors import MessageSizeTooLargeError
        from kafka.future import Future

        try:
            return self._producer.send(
                self.topic, key=letter.key, value=letter.value, headers=list(letter.headers)
            )
        except MessageSizeTooLargeError as exc:  # the producer's own check, before anything is sent
            return Future().failure(exc)

    def close(self) -> None:
        self._producer.close(timeout=self.timeout_s)


class FileDeadLetters:
    """Writes rejected lines to `<input>.rejected.jsonl`: line, error, detail and the original text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: BinaryIO = path.open("wb")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(f"INPUT: cannot create the rejected-lines file {path}: {reason}") from None

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        for dead in letters:
            self._file.write(_rejected_line(dead))
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise DeadLetterUnavailable(f"{self.path}: {exc}", []) from exc

    def close(self) -> None:
        self._file.close()


def _rejected_line(dead: DeadLetter) -> bytes:
    record: dict[str, Any] = {"line": dead.message.offset, "error": dead.code, "detail": dead.detail}
    if dead.message.origin is not None:  # a converted source (OTLP spans): "line" is the span's number
        record["where"] = dead.message.origin
    if dead.without_payload:
        record["raw_dropped"] = "the capture's user was forgotten (shadowlab forget)"
        return json.dumps(record).encode("ascii") + b"\n"
    try:
        record["raw"] = dead.message.value.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(dead.message.value).decode("ascii")
    return json.dumps(record).encode("ascii") + b"\n"


def rejected_path(input_path: Path) -> Path:
    """`captures.jsonl` → `captures.jsonl.rejected.jsonl`, beside the input."""
    return input_path.with_name(input_path.name + ".rejected.jsonl")
