"""One batch, source-independent: validate → sample/filter → redact → rows for the sink, or dead letters.

Sampling runs before redaction (the result is the same and dropped captures cost nothing to redact).
Nothing here touches a network: the runner does the storing, retrying and committing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest.messages import DeadLetter, Message
from ingest.metrics import IngestMetrics
from ingest.redact import Redactor
from ingest.sampling import Selector
from ingest.sink import Row
from shadowlab.apis.wire import WireRequest
from shadowlab.capture import (
    CaptureError,
    CaptureView,
    capture_text,
    capture_view_from_dict,
    decode_capture_text,
)
from shadowlab.fingerprint import body_fingerprint
from shadowlab.request_shape import prompt_chars, user_turn
from shadowlab.usage import estimate_usage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    max_bytes: int
    selector: Selector = field(default_factory=Selector)
    redactor: Redactor = field(default_factory=Redactor)


@dataclass(frozen=True)
class Prepared:
    """A batch ready for the sink: rows (with their messages) and dead letters."""

    rows: list[tuple[Message, Row]]
    dead: list[DeadLetter]


def prepare(messages: Sequence[Message], config: PipelineConfig, metrics: IngestMetrics) -> Prepared:
    """Turn raw messages into rows and dead letters; never raises for a bad message."""
    rows: list[tuple[Message, Row]] = []
    dead: list[DeadLetter] = []
    now = datetime.now(UTC)
    metrics.consumed(len(messages))
    for message in messages:
        if message.rejection is not None:
            dead.append(DeadLetter(message, *message.rejection))
            continue
        try:
            text = capture_text(message.value, max_bytes=config.max_bytes)
            data = decode_capture_text(text)
            capture = capture_view_from_dict(data)
            reason = config.selector.reason_to_skip(capture)
            if reason is not None:
                metrics.skipped(reason)
                continue
            rows.append((message, row_of(capture, data, message, config.redactor, now, text)))
        except CaptureError as exc:
            dead.append(DeadLetter(message, exc.code, exc.detail))
        except Exception as exc:  # a bug of ours must not wedge the partition: dead-letter and log it
            log.exception("unexpected error on message %s", message.where)
            dead.append(
                DeadLetter(message, "internal_error", f"(message): {type(exc).__name__}: {exc}"[:500])
            )
    return Prepared(rows, dead)


def row_of(
    capture: CaptureView,
    data: dict[str, Any],
    message: Message,
    redactor: Redactor,
    now: datetime,
    text: str | None = None,
) -> Row:
    """The `captured_requests` row of a capture, with request and response redacted.

    `data` is the JSON the capture was validated from: request and response are stored as sent, which
    is cheaper than dumping the model again (`Capture.to_json_dict`) and keeps `1` from becoming `1.0`.
    `text`, the message `data` was decoded from, lets redaction skip a capture in which nothing can match.
    """
    redacted = redactor.redact_capture(
        data["request"], data.get("response"), data.get("source"), json_text=text
    )
    # Of the request as stored (what the migration's backfill and the analysis recompute); when nothing was
    # redacted that is the request already validated as a model (not by the fast path), so it is not
    # validated again.
    unchanged = not any(redacted.counts.values())
    validated = capture.request if unchanged and isinstance(capture.request, WireRequest) else None
    fingerprint = body_fingerprint(capture.api, redacted.request, validated=validated)
    source = capture.source
    return {
        "request_id": capture.request_id,
        "schema_version": capture.schema_version,
        "captured_at": capture.captured_at,
        "ingested_at": now,
        "service": source.service,
        "route": redacted.source.get("route", source.route),
        "environment": source.environment,
        "conversation_id": redacted.source.get("conversation_id", source.conversation_id),
        "user_hash": source.user_hash,
        "tags": dict(redacted.source.get("tags", source.tags)),
        "api": capture.api,
        "model": capture.request.model,
        "request": redacted.request,
        "response": _with_usage_estimate(redacted.response, capture, data["request"]),
        "redaction": {"counts": redacted.counts},
        "source_topic": message.topic,
        "source_partition": message.partition,
        "source_offset": message.offset,
        "prompt_fingerprint": fingerprint,
        "prompt_chars": prompt_chars(redacted.request),
        "user_turn": user_turn(redacted.request),
    }


def _with_usage_estimate(
    response: dict[str, Any] | None, capture: CaptureView, request: Any
) -> dict[str, Any] | None:
    """An answer that came without usage (`usage_status: "absent"`) gets an estimate beside it,
    `usage_estimate` with its `method`; `usage` stays null (unknown, never a guessed count)."""
    answer = capture.response
    if response is None or answer is None or answer.usage_status != "absent":
        return response
    estimate = estimate_usage(request, answer.text, answer.tool_calls)
    return {**response, "usage_estimate": asdict(estimate)}
