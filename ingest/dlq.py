"""Dead letters: topic `<topic>.dlq` (original bytes + reason headers), or `<input>.rejected.jsonl` for files.

`publish()` returns only when every dead letter of the batch is durable; offsets are committed after it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ingest.messages import DeadLetter
from shadowlab.broker import TOPIC_MAX_MESSAGE_BYTES
from shadowlab.errors import ServiceUnavailableError

log = logging.getLogger(__name__)
HEADER_ERROR = "shadowlab.error"
HEADER_DETAIL = "shadowlab.detail"
HEADER_SOURCE = "shadowlab.source"
HEADER_TRUNCATED = "shadowlab.truncated"
# Headers and record overhead must fit beside the value in the topic's `max.message.bytes`.
_VALUE_ROOM = TOPIC_MAX_MESSAGE_BYTES - 16 * 1024


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


def headers_of(dead: DeadLetter) -> list[tuple[str, bytes]]:
    """The reason headers of a dead letter (DESIGN §3)."""
    return [
        (HEADER_ERROR, dead.code.encode()),
        (HEADER_DETAIL, dead.detail.encode("utf-8", "replace")),
        (HEADER_SOURCE, dead.message.where.encode("utf-8", "replace")),
    ]


class KafkaDeadLetters:
    """Produces dead letters with acks=all; a value too big for the topic is cut and marked as such."""

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
        )

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        from kafka.errors import KafkaError

        sent: list[tuple[DeadLetter, Any]] = []
        try:
            for dead in letters:
                sent.append((dead, self._send(dead)))
            self._producer.flush(timeout=self.timeout_s)
        except KafkaError as exc:
            # A letter whose send is still in flight may arrive later as well: the DLQ is at-least-once.
            failed = [d for d, f in sent if not f.succeeded()] + list(letters[len(sent) :])
            raise DeadLetterUnavailable(f"dead-letter topic {self.topic}: {exc}", failed) from exc
        failed = [d for d, f in sent if not f.succeeded()]
        if failed:
            reasons = {repr(f.exception) for _, f in sent if f.failed()}
            raise DeadLetterUnavailable(
                f"dead-letter topic {self.topic}: {len(failed)} not sent ({', '.join(sorted(reasons))})",
                failed,
            )

    def _send(self, dead: DeadLetter) -> Any:
        value, headers = dead.message.value, headers_of(dead)
        if len(value) > _VALUE_ROOM:
            headers.append((HEADER_TRUNCATED, f"first {_VALUE_ROOM} of {len(value)} bytes".encode()))
            value = value[:_VALUE_ROOM]
        return self._producer.send(self.topic, value=value, key=dead.message.key, headers=headers)

    def close(self) -> None:
        self._producer.close(timeout=self.timeout_s)


class FileDeadLetters:
    """Writes rejected lines to `<input>.rejected.jsonl`: line, error, detail and the original text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = path.open("wb")

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
    try:
        record["raw"] = dead.message.value.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(dead.message.value).decode("ascii")
    return json.dumps(record).encode("ascii") + b"\n"


def rejected_path(input_path: Path) -> Path:
    """`captures.jsonl` → `captures.jsonl.rejected.jsonl`, beside the input."""
    return input_path.with_name(input_path.name + ".rejected.jsonl")
