"""One batch without a network: rows keep the request as sent; the batch dump falls back if orjson cannot."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ingest.messages import Message
from ingest.metrics import IngestMetrics
from ingest.pipeline import PipelineConfig, prepare
from ingest.sink import _json_default, dump_rows
from shadowlab.capture import DEFAULT_MAX_BYTES, OverflowFloat
from shadowlab.fingerprint import body_fingerprint
from tests.support.ingest import encode, make_capture


def test_rows_hold_the_request_as_sent_redacted() -> None:
    capture = make_capture(1, text="mail me at jane@example.com")
    capture["request"]["temperature"] = 1
    capture["request"]["future_field"] = {"kept": [1, 2.5]}
    message = Message(encode(capture), None, "t", 0, 7)
    prepared = prepare([message], PipelineConfig(DEFAULT_MAX_BYTES), IngestMetrics())
    [(_, row)] = prepared.rows
    assert prepared.dead == []
    assert row["request"]["messages"][0]["content"] == "mail me at [EMAIL_1]"
    assert type(row["request"]["temperature"]) is int  # not re-dumped from the model as 1.0
    assert row["request"]["future_field"] == {"kept": [1, 2.5]}
    assert row["captured_at"] == datetime(2025, 1, 31, 12, tzinfo=UTC)
    assert (row["model"], row["service"], row["source_offset"]) == ("claude-test", "support", 7)
    assert capture["request"]["messages"][0]["content"].endswith("jane@example.com")


def test_rows_carry_the_fingerprint_of_the_stored_request() -> None:
    captures = [
        make_capture(1, text="opening hours?"),
        make_capture(2, text="opening hours?"),  # the same prompt, another capture
        make_capture(3, text="mail me at jane@example.com"),  # redacted before fingerprinting
        make_capture(4, text="mail me at john@example.com"),
        make_capture(5, text="opening hours?", api="openai.chat"),  # the same prompt through OpenAI
        make_capture(6, text="opening hours, please?"),
    ]
    messages = [Message(encode(c), None, "t", 0, i) for i, c in enumerate(captures)]
    prepared = prepare(messages, PipelineConfig(DEFAULT_MAX_BYTES), IngestMetrics())
    assert prepared.dead == []
    rows = [row for _, row in prepared.rows]
    fingerprints = [row["prompt_fingerprint"] for row in rows]
    assert fingerprints == [body_fingerprint(row["api"], row["request"]) for row in rows]
    assert fingerprints[0] == fingerprints[1] == fingerprints[4] and fingerprints[2] == fingerprints[3]
    assert len(set(fingerprints)) == 3


def test_bad_messages_are_dead_lettered_with_the_capture_codes() -> None:
    messages = [Message(raw, None, "t", 0, i) for i, raw in enumerate([b"\xff", b"[]", b"{", b"{}"])]
    prepared = prepare(messages, PipelineConfig(DEFAULT_MAX_BYTES), IngestMetrics())
    assert prepared.rows == []
    assert [d.code for d in prepared.dead] == ["not_utf8", "not_object", "not_json", "missing_field"]


CAPTURED_AT_RANGE = "captured_at: expected a time from 2000-01-01T00:00:00Z to one day after now ("


def test_a_captured_at_no_reader_could_hold_is_dead_lettered_with_the_range() -> None:
    times = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00+14:00", "2025-01-31T12:00:00+00:00"]
    captures = [make_capture(i, captured_at=at) for i, at in enumerate(times)]
    messages = [Message(encode(c), None, "t", 0, i) for i, c in enumerate(captures)]
    prepared = prepare(messages, PipelineConfig(DEFAULT_MAX_BYTES), IngestMetrics())
    assert [row["request_id"] for _, row in prepared.rows] == ["req-00000002"]
    assert [(d.code, d.message.offset) for d in prepared.dead] == [("invalid_value", 0), ("invalid_value", 1)]
    for dead, at in zip(prepared.dead, times, strict=False):
        assert dead.detail.startswith(CAPTURED_AT_RANGE) and dead.detail.endswith(
            f"), found {json.dumps(at)}"
        )


def test_the_batch_dump_reads_back_like_the_standard_library() -> None:
    offset = timezone(timedelta(hours=5, minutes=30, seconds=15))
    rows: list[dict[str, Any]] = [
        {
            "t": datetime(2025, 1, 31, 12, 0, 0, 5, tzinfo=offset),
            "s": 'é漢\x00 "q"',
            "n": [1, 2.5, None, True],
        }
    ]
    fast = dump_rows(rows)
    assert json.loads(fast) == json.loads(json.dumps(rows, default=_json_default))
    assert '"t":"2025-01-31T12:00:00.000005+05:30:15"' in fast  # datetimes exactly as isoformat()


@pytest.mark.parametrize("value", ["\ud800", 2**70, OverflowFloat("inf")])
def test_what_orjson_refuses_is_dumped_by_the_standard_library(value: Any) -> None:
    rows = [{"v": value}]
    assert dump_rows(rows) == json.dumps(rows, default=_json_default)
