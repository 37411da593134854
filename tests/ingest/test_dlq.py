"""Dead letters that do not fit the DLQ topic: cut or sent without their payload, never wedging a partition.

A message near the capture topic's size limit becomes bigger than the limit once the reason headers are
added; the DLQ topic may also have a smaller limit than ingest assumes. Either way the valid capture behind
the bad message, on the same partition, must be stored.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.dlq import DETAIL_ROOM, RECORD_ROOM, headers_of, letter_of
from ingest.messages import DeadLetter, Message
from shadowlab.broker import TOPIC_MAX_MESSAGE_BYTES
from tests.support.ingest import count_rows, encode, make_capture, unique

Start = Callable[..., subprocess.Popen[bytes]]


def _record_size(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> int:
    """kafka-python's own estimate, the one its producer checks against `max_request_size`."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers))


@pytest.fixture
def send(kafka_bootstrap: str) -> Iterator[Callable[[str, list[tuple[bytes | None, bytes]]], None]]:
    """Produce (key, value) pairs to one topic in order, acks=all, flushed."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")

    def send_all(topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()

    yield send_all
    producer.close()


@pytest.fixture
def dlq_topics(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """`<topic>.dlq`: created with `config`, or (no config) left for ingest to create; deleted after."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    names: list[str] = []

    def dlq_of(topic: str, config: dict[str, str] | None = None) -> str:
        name = f"{topic}.dlq"
        if config is not None:
            admin.create_topics([NewTopic(name, 1, 1, topic_configs=config)])
        names.append(name)
        return name

    yield dlq_of
    existing = set(admin.list_topics())
    if gone := [n for n in names if n in existing]:
        admin.delete_topics(gone)
    admin.close()


def _letters(bootstrap: str, topic: str, n: int) -> list[tuple[bytes | None, bytes, dict[str, str]]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        group_id=f"read-{uuid.uuid4().hex[:8]}",
        fetch_max_bytes=4 * TOPIC_MAX_MESSAGE_BYTES,
        max_partition_fetch_bytes=4 * TOPIC_MAX_MESSAGE_BYTES,
    )
    out = []
    for record in consumer:
        out.append((record.key, record.value, {k: v.decode() for k, v in record.headers}))
        if len(out) == n:
            break
    consumer.close()
    assert len(out) == n, f"expected {n} dead letters, found {len(out)}: {[h for _, _, h in out]}"
    return out


def _ingest(start: Start, url: str, topic: str, log: Path) -> None:
    proc = start(url, "--topic", topic, "--group", unique("g"), "--idle-exit", "3", log=log)
    try:
        code = proc.wait(90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ingest still running after 90 s (wedged?): {log.read_text()[-1500:]}")
    assert code == 0, log.read_text()[-2000:]


def _dead(key: bytes | None, value: bytes, detail: str) -> DeadLetter:
    return DeadLetter(Message(value, key, "captures", 3, 42), "not_json", detail)


@settings(max_examples=200, deadline=None)
@given(
    key=st.one_of(st.none(), st.integers(0, 2 * TOPIC_MAX_MESSAGE_BYTES).map(lambda n: b"k" * n)),
    value=st.integers(0, 2 * TOPIC_MAX_MESSAGE_BYTES).map(lambda n: b"v" * n),
    detail=st.integers(0, 3 * DETAIL_ROOM).map(lambda n: "é" * n),
)
def test_every_letter_fits_and_keeps_what_fits(key: bytes | None, value: bytes, detail: str) -> None:
    dead = _dead(key, value, detail)
    letter = letter_of(dead)
    headers = dict(letter.headers)
    assert letter.size <= RECORD_ROOM
    assert headers["shadowlab.source"] == b"captures/3/42" and headers["shadowlab.error"] == b"not_json"
    assert len(headers["shadowlab.detail"]) <= DETAIL_ROOM
    assert detail.startswith(headers["shadowlab.detail"].decode().removesuffix("…"))
    if _record_size(key, value, headers_of(dead)) <= RECORD_ROOM:
        assert (letter.key, letter.value, "shadowlab.truncated" in headers) == (key, value, False)
    elif letter.key == key:  # the value was cut, as little as possible
        assert value.startswith(letter.value)
        assert headers["shadowlab.truncated"] == f"first {len(letter.value)} of {len(value)} bytes".encode()
        assert letter.size > RECORD_ROOM - 16
    else:  # no room even for the key: reason and source only
        assert (letter.key, letter.value) == (None, b"")
        assert headers["shadowlab.truncated"].startswith(b"payload dropped: key of ")


@pytest.mark.kafka
@pytest.mark.postgres
def test_letters_bigger_than_the_dlq_limit_are_cut_or_emptied_and_the_partition_moves_on(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    dlq_topics: Callable[..., str],
    send: Callable[[str, list[tuple[bytes | None, bytes]]], None],
    ingest_process: Start,
    tmp_path: Path,
) -> None:
    topic = kafka_topic(partitions=1)
    dlq = dlq_topics(topic)
    # Just under the limit as sent; the reason headers push the dead letter over it.
    big_key = b"k" * 1_000_000
    near_limit = b"x" * (TOPIC_MAX_MESSAGE_BYTES - _record_size(big_key, b"", []) - 16)
    assert _record_size(big_key, near_limit, []) <= TOPIC_MAX_MESSAGE_BYTES
    huge_key = b"h" * (TOPIC_MAX_MESSAGE_BYTES - 200)  # no room for anything beside it
    # A free-form JSON key in the failing path: the detail names the field, never the key (it may be PII).
    huge_detail = encode(make_capture(3, source={"service": "s", "tags": {"t" * 600_000: 1}}))
    valid = encode(make_capture(1))
    send(
        topic,
        [(big_key, near_limit), (huge_key, b"{"), (b"req-00000003", huge_detail), (b"req-00000001", valid)],
    )

    _ingest(ingest_process, pg_url, topic, tmp_path / "ingest.log")

    assert count_rows(pg_url) == 1  # the valid capture behind them was stored
    (cut_key, cut_value, cut), (no_key, no_value, emptied), (_, whole, short) = _letters(
        kafka_bootstrap, dlq, 3
    )
    assert (cut["shadowlab.error"], cut["shadowlab.source"]) == ("not_json", f"{topic}/0/0")
    assert cut_key == big_key and near_limit.startswith(cut_value)
    assert cut["shadowlab.truncated"] == f"first {len(cut_value)} of {len(near_limit)} bytes"
    assert (
        _record_size(cut_key, cut_value, [(k, v.encode()) for k, v in cut.items()])
        <= TOPIC_MAX_MESSAGE_BYTES - 16 * 1024
    )
    assert (emptied["shadowlab.error"], emptied["shadowlab.source"]) == ("not_json", f"{topic}/0/1")
    assert (no_key, no_value) == (None, b"")
    assert emptied["shadowlab.truncated"] == f"payload dropped: key of {len(huge_key)} bytes, value of 1 byte"
    assert (short["shadowlab.error"], short["shadowlab.source"]) == ("wrong_type", f"{topic}/0/2")
    assert whole == huge_detail and "shadowlab.truncated" not in short
    assert short["shadowlab.detail"] == "source.tags.[key]: expected a string, found a number"


@pytest.mark.kafka
@pytest.mark.postgres
def test_a_letter_the_dlq_topic_refuses_as_too_large_is_sent_without_its_payload(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    dlq_topics: Callable[..., str],
    send: Callable[[str, list[tuple[bytes | None, bytes]]], None],
    ingest_process: Start,
    tmp_path: Path,
) -> None:
    topic = kafka_topic(partitions=1)
    dlq = dlq_topics(topic, {"max.message.bytes": str(64 * 1024)})  # below what ingest assumes
    bad = b"y" * 200_000
    send(topic, [(b"bad", bad), (b"req-00000002", encode(make_capture(2)))])

    _ingest(ingest_process, pg_url, topic, tmp_path / "ingest.log")

    assert count_rows(pg_url) == 1
    [(key, value, headers)] = _letters(kafka_bootstrap, dlq, 1)
    assert (key, value) == (None, b"")
    assert headers["shadowlab.error"] == "not_json"
    assert headers["shadowlab.source"] == f"{topic}/0/0"
    assert headers["shadowlab.truncated"] == "payload dropped: key of 3 bytes, value of 200000 bytes"
