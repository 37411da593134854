"""Reading a topic back and deleting it, for tests against the real broker."""

from __future__ import annotations


def read_records(bootstrap: str, topic: str, n: int) -> list[tuple[bytes, dict[str, str]]]:
    """The first `n` records of `topic` (value, headers); fails when fewer arrive within 10 s."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    out = []
    for record in consumer:
        out.append((record.value, {k: v.decode() for k, v in record.headers}))
        if len(out) == n:
            break
    consumer.close()
    assert len(out) == n, f"expected {n} records on {topic}, found {len(out)}: {[h for _, h in out]}"
    return out


def delete_topic(bootstrap: str, topic: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if topic in admin.list_topics():
            admin.delete_topics([topic])
    finally:
        admin.close()
