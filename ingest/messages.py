"""What flows between ingest's parts: a message from a source, and a dead letter with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shadowlab.capture import CaptureErrorCode

# Capture errors, plus rows the database refused (NUL in text, too long for a column) and ingest's own bugs:
# a message that trips either is dead-lettered instead of blocking its partition forever.
RejectCode = CaptureErrorCode | Literal["not_storable", "internal_error"]


@dataclass(frozen=True, slots=True)
class Message:
    """One raw capture and where it came from (`topic` is None for a file; `offset` is then the line)."""

    value: bytes
    key: bytes | None
    topic: str | None
    partition: int | None
    offset: int

    @property
    def where(self) -> str:
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
