"""Kafka administration shared by the stages: reachability checks and topic creation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from shadowlab.errors import ConfigError, ServiceUnavailableError

# The topic's limit sits above ingest's 900 KiB limit so oversized captures reach ingest and get
# dead-lettered with `too_large` instead of failing at the producer (DESIGN §3).
TOPIC_MAX_MESSAGE_BYTES = 1_048_576


class TopicNotFound(ConfigError):
    """A topic a command reads from does not exist (the brokers here do not create topics on first use)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 4
    config: dict[str, str] = field(default_factory=dict)


def capture_topics(topic: str, partitions: int = 4) -> tuple[TopicSpec, TopicSpec]:
    """The capture topic and its dead-letter topic `<topic>.dlq`."""
    config = {"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES)}
    return TopicSpec(topic, partitions, config), TopicSpec(f"{topic}.dlq", 1, config)


@contextmanager
def _quiet_bootstrap() -> Iterator[None]:
    """kafka-python logs each failed attempt of a bootstrap (a dozen ERROR/WARNING lines in a second); when
    the broker is out of reach the caller says so in one line of its own, so they are held back meanwhile."""
    kafka = logging.getLogger("kafka")
    level = kafka.level
    kafka.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        kafka.setLevel(level)


def _admin(bootstrap: str, timeout_s: float) -> object:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    timeout_ms = max(1, int(timeout_s * 1000))
    try:
        with _quiet_bootstrap():
            return KafkaAdminClient(
                bootstrap_servers=bootstrap.split(","),
                request_timeout_ms=timeout_ms,
                bootstrap_timeout_ms=timeout_ms,
                client_id="shadowlab-admin",
            )
    except KafkaError as exc:
        raise ServiceUnavailableError(f"Kafka unreachable at {bootstrap}: {exc}") from None


def list_topics(bootstrap: str, timeout_s: float = 5.0) -> list[str]:
    """Topics on the cluster; an unreachable broker is one clear `ServiceUnavailableError` line."""
    from kafka.errors import KafkaError

    admin = _admin(bootstrap, timeout_s)
    try:
        return sorted(admin.list_topics())  # type: ignore[attr-defined]
    except KafkaError as exc:
        raise ServiceUnavailableError(f"Kafka unreachable at {bootstrap}: {exc}") from None
    finally:
        admin.close()  # type: ignore[attr-defined]


def ensure_topics(bootstrap: str, topics: Iterable[TopicSpec], timeout_s: float = 10.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    existing = set(list_topics(bootstrap, timeout_s))
    missing = [t for t in topics if t.name not in existing]
    if not missing:
        return []
    admin = _admin(bootstrap, timeout_s)
    try:
        new = [NewTopic(t.name, t.partitions, 1, topic_configs=t.config) for t in missing]
        admin.create_topics(new)  # type: ignore[attr-defined]
    except TopicAlreadyExistsError:
        pass  # another process won the race
    except KafkaError as exc:
        raise ServiceUnavailableError(f"Kafka at {bootstrap}: could not create topics: {exc}") from None
    finally:
        admin.close()  # type: ignore[attr-defined]
    return [t.name for t in missing]


def require_topic(bootstrap: str, topic: str, timeout_s: float = 5.0) -> None:
    """Raise `TopicNotFound` (naming the topic and how to create it) unless `topic` exists on the cluster."""
    if topic not in list_topics(bootstrap, timeout_s):
        raise TopicNotFound(
            f"Kafka topic {topic!r} not found at {bootstrap}: expected an existing topic; create it with "
            f"`SHADOWLAB_CAPTURE_TOPIC={topic} shadowlab topics create`, or check --topic"
        )
