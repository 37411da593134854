"""A real produce/consume round trip through the broker started by scripts/services.sh."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

pytestmark = pytest.mark.kafka

PARTITIONS = 4
MESSAGES = 1000
KEYS = 40  # 25 messages per key, sequence numbers 0..24
DEADLINE_S = 60.0


def produce(bootstrap: str, topic: str) -> dict[tuple[int, int], tuple[str, int]]:
    """Send MESSAGES records with acks=all; returns (partition, offset) -> (key, seq) as acknowledged."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        pending = []
        for i in range(MESSAGES):
            key, seq = f"key-{i % KEYS}", i // KEYS
            value = json.dumps({"key": key, "seq": seq}).encode()
            pending.append((key, seq, producer.send(topic, key=key.encode(), value=value)))
        producer.flush(timeout=30)
        return {
            (meta.partition, meta.offset): (key, seq)
            for key, seq, future in pending
            for meta in [future.get(timeout=30)]
        }
    finally:
        producer.close()


def consume_all(bootstrap: str, topic: str) -> tuple[list[ConsumerRecord], int]:
    """Read every partition from the start until MESSAGES records arrived; also returns the log end total."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    try:
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        received: list[ConsumerRecord] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(received) < MESSAGES and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(records)
        end_total = sum(consumer.end_offsets(partitions).values())
        return received, end_total
    finally:
        consumer.close()


def test_every_message_arrives_once_in_partition_order(
    kafka_bootstrap: str, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(partitions=PARTITIONS)
    acked = produce(kafka_bootstrap, topic)
    assert len(acked) == MESSAGES, "every send must be acknowledged at its own offset"
    assert {partition for partition, _ in acked} == set(range(PARTITIONS)), "keys should cover all partitions"

    received, end_total = consume_all(kafka_bootstrap, topic)

    assert end_total == MESSAGES, f"the broker holds {end_total} records, expected {MESSAGES} (duplicates?)"
    assert len(received) == MESSAGES, f"received {len(received)} of {MESSAGES} within {DEADLINE_S} s"
    got = {(r.partition, r.offset): (r.key.decode(), json.loads(r.value)["seq"]) for r in received}
    assert got == acked, "each record must come back at the partition and offset the producer was given"

    offsets: dict[int, list[int]] = defaultdict(list)
    seqs: dict[str, list[int]] = defaultdict(list)
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    for record in received:
        key, seq = got[(record.partition, record.offset)]
        offsets[record.partition].append(record.offset)
        seqs[key].append(seq)
        partitions_of_key[key].add(record.partition)
    for partition, seen in offsets.items():
        assert seen == sorted(set(seen)), f"partition {partition} delivered offsets out of order"
    for key, seen in seqs.items():
        assert seen == list(range(MESSAGES // KEYS)), f"{key}: sequence numbers arrived as {seen}"
        assert len(partitions_of_key[key]) == 1, f"{key} landed on partitions {partitions_of_key[key]}"
