"""Ingest against the real broker and Postgres: crash recovery, consumer groups, dead letters, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.ingest import (
    assigned_partitions,
    count_rows,
    describe_group,
    encode,
    end_offsets,
    group_offsets,
    make_capture,
    unique,
    wait_for,
)
from tests.support.kafka_topics import delete_topic, read_records

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
Start = Callable[..., subprocess.Popen[bytes]]


def _captures(start: int, n: int) -> list[bytes]:
    return [encode(make_capture(i)) for i in range(start, start + n)]


def _distinct(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("select count(*), count(distinct request_id) from captured_requests")
        ).one()
    engine.dispose()
    return int(row[0]), int(row[1])


@pytest.mark.slow
@pytest.mark.faults
def test_kill_9_midway_then_restart_stores_everything_exactly_once(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    produce: Any,
    ingest_process: Start,
    tmp_path: Path,
) -> None:
    topic, group, n = kafka_topic(partitions=4), unique("g"), 20_000
    produce(topic, _captures(0, n))
    args = ("--topic", topic, "--group", group, "--batch-size", "1000")

    first = ingest_process(pg_url, *args, log=tmp_path / "first.log")
    wait_for(lambda: count_rows(pg_url) >= n // 2, 90, "half of the captures stored")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert count_rows(pg_url) < n, "the kill came too late to test anything"

    second = ingest_process(pg_url, *args, "--idle-exit", "3", log=tmp_path / "second.log")
    assert second.wait(120) == 0, (tmp_path / "second.log").read_text()[-2000:]
    assert _distinct(pg_url) == (n, n)
    assert group_offsets(kafka_bootstrap, group) == end_offsets(kafka_bootstrap, topic)


@pytest.mark.slow
@pytest.mark.faults
def test_two_processes_share_partitions_and_survive_one_stopping(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    produce: Any,
    ingest_process: Start,
    tmp_path: Path,
) -> None:
    topic, group = kafka_topic(partitions=4), unique("g")
    produce(topic, _captures(0, 4000))
    args = ("--topic", topic, "--group", group, "--batch-size", "500")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = ingest_process(pg_url, *args, log=logs[0])
    b = ingest_process(pg_url, *args, "--idle-exit", "4", log=logs[1])

    def both_assigned() -> bool:
        # The broker's view: two members, each holding some but not all of the 4 partitions.
        held = assigned_partitions(describe_group(kafka_bootstrap, group), topic)
        return len(held) == 2 and all(1 <= len(partitions) <= 3 for partitions in held)

    wait_for(both_assigned, 60, "both processes to own some partitions")
    wait_for(lambda: count_rows(pg_url) == 4000, 60, "the first 4000 captures")
    a.send_signal(signal.SIGTERM)
    assert a.wait(30) == 0
    produce(topic, _captures(4000, 4000))
    assert b.wait(120) == 0, logs[1].read_text()[-2000:]
    assert _distinct(pg_url) == (8000, 8000)
    # The second 4000 were produced after a left: b read all 4 partitions to their end, a's share too.
    assert group_offsets(kafka_bootstrap, group) == end_offsets(kafka_bootstrap, topic)


def test_sigterm_finishes_the_batch_commits_and_exits_0(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    produce: Any,
    ingest_process: Start,
    tmp_path: Path,
) -> None:
    topic, group = kafka_topic(partitions=2), unique("g")
    produce(topic, _captures(0, 6000))
    proc = ingest_process(
        pg_url, "--topic", topic, "--group", group, "--batch-size", "200", log=tmp_path / "l"
    )
    wait_for(lambda: count_rows(pg_url) > 0, 60, "the first batch")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    stored = count_rows(pg_url)
    # Every stored row is committed and nothing beyond: offsets account for exactly the stored captures.
    assert sum(group_offsets(kafka_bootstrap, group).values()) == stored


def test_bad_messages_go_to_the_dlq_with_reasons_and_good_ones_around_them_are_stored(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    produce: Any,
    ingest_process: Start,
    tmp_path: Path,
) -> None:
    topic = kafka_topic(partitions=1)
    capture = make_capture
    bad = {
        "not_utf8": b"\xc3\x28 caf\xe9",
        "not_json": b'{"schema_version": 1,',
        "not_object": b'"just a string"',
        "missing_field": encode({k: v for k, v in capture(900).items() if k != "request_id"}),
        "wrong_type": encode(capture(901, source={"service": 42})),
        "unknown_schema_version": encode(capture(902, schema_version=2)),
        "unknown_api": encode(capture(903, api="gemini.generate")),
        "too_large": encode(capture(904, text="x" * 5000)),
        "not_storable": encode(capture(905, text="nul \u0000 inside")),
    }
    values: list[bytes] = []
    for i, value in enumerate(bad.values()):
        values += [encode(capture(i)), value]
    values.append(encode(capture(99)))
    produce(topic, values)

    proc = ingest_process(
        pg_url,
        "--topic",
        topic,
        "--group",
        unique("g"),
        "--idle-exit",
        "2",
        log=tmp_path / "l",
        env={"SHADOWLAB_INGEST_MAX_BYTES": "4096"},
    )
    assert proc.wait(60) == 0, (tmp_path / "l").read_text()[-2000:]
    assert count_rows(pg_url) == len(bad) + 1

    letters = read_records(kafka_bootstrap, f"{topic}.dlq", len(bad))
    got = {h["shadowlab.error"]: (v, h) for v, h in letters}
    assert set(got) == set(bad)
    for code, value in bad.items():
        original, headers = got[code]
        assert original == value
        assert headers["shadowlab.source"] == f"{topic}/0/{2 * list(bad).index(code) + 1}"
    assert (
        got["missing_field"][1]["shadowlab.detail"]
        == "request_id: expected a value (required), found nothing"
    )
    assert got["wrong_type"][1]["shadowlab.detail"].startswith("source.service: expected a")
    assert got["too_large"][1]["shadowlab.detail"] == (
        f"(message): expected at most 4096 bytes, found {len(bad['too_large'])} bytes"
    )
    assert "expected a value the database can store" in got["not_storable"][1]["shadowlab.detail"]


def test_a_captured_at_out_of_range_is_dead_lettered_with_the_range_as_its_reason(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    produce: Any,
    ingest_process: Start,
    tmp_path: Path,
) -> None:
    topic = kafka_topic(partitions=1)
    times = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00+14:00"]  # years 10000 and 0 in UTC
    bad = [encode(make_capture(i, captured_at=at)) for i, at in enumerate(times)]
    produce(topic, [bad[0], encode(make_capture(7)), bad[1]])

    proc = ingest_process(
        pg_url, "--topic", topic, "--group", unique("g"), "--idle-exit", "2", log=tmp_path / "l"
    )
    try:
        assert proc.wait(60) == 0, (tmp_path / "l").read_text()[-2000:]
        letters = read_records(kafka_bootstrap, f"{topic}.dlq", len(bad))
    finally:
        delete_topic(kafka_bootstrap, f"{topic}.dlq")

    assert count_rows(pg_url) == 1
    assert [value for value, _ in letters] == bad
    for (_, headers), at, offset in zip(letters, times, (0, 2), strict=True):
        assert headers["shadowlab.error"] == "invalid_value"
        assert headers["shadowlab.source"] == f"{topic}/0/{offset}"
        detail = headers["shadowlab.detail"]
        assert detail.startswith(
            "captured_at: expected a time from 2000-01-01T00:00:00Z to one day after now ("
        )
        assert detail.endswith(f"), found {json.dumps(at)}")
