"""What flows between ingest's parts: a message from a source, and a dead letter with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shadowlab.capture import CaptureErrorCode
from shadowlab.otlp import OtlpRejectCode

# Capture errors, plus rows the database refused (NUL in text, too long for a column) and ingest's own bugs:
# a message that trips either is dead-lettered instead of blocking its partition forever. OpenTelemetry
# spans that cannot be captures arrive already rejected, with their own codes.
RejectCode = CaptureErrorCode | OtlpRejectCode | Literal["not_storable", "internal_error"]


@dataclass(frozen=True, slots=True)
class Message:
    """One raw capture and where it came from (`topic` is None for a file; `offset` is then the line).

    A source that converts what it reads (OpenTelemetry spans) names the place itself (`origin`) and may
    hand over a message already rejected: `value` is then what it read, dead-lettered with `rejection`."""

    value: bytes
    key: bytes | None
    topic: str | None
    partition: int | None
    offset: int
    origin: str | None = None
    rejection: tuple[RejectCode, str] | None = None

    @property
    def where(self) -> str:
        if self.origin is not None:
            return self.origin
        return (
            f"{self.topic}/{self.partition}/{self.offset}"
            if self.topic is not None
            else f"line {self.offset}"
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: Message
    code: RejectCode
    detail: str
    without_payload: bool = False  # the capture's user was forgotten: keep the reason, never the text
