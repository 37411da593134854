"""For the ingest tests: valid captures, polling for a condition, counting rows and Kafka offsets."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa


def make_capture(i: int, *, text: str = "", **overrides: Any) -> dict[str, Any]:
    """A valid schema-v1 capture with request id `req-<i>`; `text` goes into the user message."""
    capture: dict[str, Any] = {
        "schema_version": 1,
        "request_id": f"req-{i:08d}",
        "captured_at": "2025-01-31T12:00:00+00:00",
        "source": {"service": "support", "route": "/chat", "environment": "prod", "user_hash": f"u{i % 7}"},
        "api": "anthropic.messages",
        "request": {
            "model": "claude-test",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text or f"question number {i}"}],
        },
        "response": {"text": f"answer {i}", "stop_reason": "end_turn", "usage": {"input_tokens": 5}},
    }
    capture.update(overrides)
    return capture


def encode(capture: dict[str, Any]) -> bytes:
    return json.dumps(capture).encode()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    """Poll `condition` until true; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def count_rows(url: str, table: str = "captured_requests") -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
    except sa.exc.OperationalError:
        return -1
    finally:
        engine.dispose()


def group_offsets(bootstrap: str, group: str) -> dict[int, int]:
    """Committed offsets of `group`, by partition."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group)
    finally:
        admin.close()
    by_group = offsets.get(group, offsets) if isinstance(offsets, dict) else offsets
    return {tp.partition: meta.offset for tp, meta in by_group.items()}


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def describe_group(bootstrap: str, group: str) -> dict[str, Any]:
    """The broker's view of a consumer group: `group_state`, and `members` with their `member_assignment`."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return dict(admin.describe_groups([group])[group])
    finally:
        admin.close()


def assigned_partitions(group: dict[str, Any], topic: str) -> list[set[int]]:
    """The partitions of `topic` each member of a described group holds, one set per member (an empty set
    while a rebalance has not handed it any)."""
    held = []
    for member in group["members"]:
        assignment = member.get("member_assignment") or {}
        parts = assignment.get("assigned_partitions") or []
        held.append({p for part in parts if part["topic"] == topic for p in part["partitions"]})
    return held


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples an ingest process serves on `--metrics-port` (name and sorted labels → value); {} while
    the server is not up yet."""
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def retries(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], service: str) -> float:
    """`shadowlab_ingest_retries_total` for `service` among scraped samples (0 before the first)."""
    return samples.get(("shadowlab_ingest_retries_total", (("service", service),)), 0.0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
