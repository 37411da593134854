"""Kafka sink: a kafka-python producer (idempotent, acks=all, compressed, key = request_id) on the worker."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final

from shadowlab_tee.record import TeeConfigError
from shadowlab_tee.sink import Sink

DEFAULT_TOPIC: Final = "llm.captures"
_CLOSE_TIMEOUT_S: Final = 5.0
# Producers inherited through fork(): kept referenced so that no finaliser touches their sockets.
_INHERITED: Final[list[Any]] = []


class KafkaSink(Sink):
    """Sends captures to `topic`; the producer is built on the worker thread, never in the caller's.

    While the broker cannot be reached the captures wait in the queue (up to `queue_size`) and the
    worker retries with backoff; delivery errors reported by the producer count as `failed`.
    `producer_config` passes further kafka-python `KafkaProducer` options (TLS, SASL, …).
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        topic: str = DEFAULT_TOPIC,
        *,
        queue_size: int = 10_000,
        compression_type: str | None = "gzip",
        linger_ms: int = 5,
        max_block_ms: int = 5_000,
        request_timeout_ms: int = 10_000,
        delivery_timeout_ms: int = 30_000,
        bootstrap_timeout_ms: int = 10_000,
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        if not topic:
            raise TeeConfigError("KafkaSink.topic must be a non-empty topic name, got ''")
        if delivery_timeout_ms < request_timeout_ms + linger_ms:
            raise TeeConfigError(
                f"KafkaSink.delivery_timeout_ms must be >= request_timeout_ms + linger_ms "
                f"({request_timeout_ms + linger_ms}), got {delivery_timeout_ms}"
            )
        self._topic = topic
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": "shadowlab-tee",
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": compression_type,
            "linger_ms": linger_ms,
            "max_block_ms": max_block_ms,
            "request_timeout_ms": request_timeout_ms,
            "delivery_timeout_ms": delivery_timeout_ms,
            "bootstrap_timeout_ms": bootstrap_timeout_ms,
            **(producer_config or {}),
        }
        self._producer: Any = None
        super().__init__(queue_size=queue_size, name=f"kafka:{topic}")

    @property
    def topic(self) -> str:
        return self._topic

    def _open(self) -> None:
        from kafka import KafkaProducer  # lazily: importing the tee must stay cheap
        from kafka.net.compat import KafkaNetClient

        # A producer whose bootstrap fails does not close the network client it built (a socket
        # pair per attempt): keep hold of it through the documented `kafka_client` hook and close it.
        _check_reachable(self._config["bootstrap_servers"], self._config["bootstrap_timeout_ms"] / 1000)
        built: list[Any] = []

        def client_factory(**configs: Any) -> Any:
            built.append(KafkaNetClient(**configs))
            return built[-1]

        try:
            self._producer = KafkaProducer(**self._config, kafka_client=client_factory)
        except BaseException:
            for client in built:
                client.close()
            raise

    def _write_batch(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        producer = self._producer
        for key, value in records:
            try:
                future = producer.send(self._topic, key=key, value=value)
            except Exception as exc:  # buffer timeout, record too large, closed producer …
                self._settle(failed=1, error=f"send: {type(exc).__name__}: {exc}")
                continue
            future.add_callback(self._on_delivered)
            future.add_errback(self._on_failed)

    def _on_delivered(self, _metadata: object) -> None:
        self._settle(sent=1)

    def _on_failed(self, exc: BaseException) -> None:
        self._settle(failed=1, error=f"delivery: {type(exc).__name__}: {exc}")

    def _close_resource(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=_CLOSE_TIMEOUT_S)
            self._producer = None

    def _abandon_after_fork(self) -> None:
        # The parent's producer shares sockets with the parent: closing or flushing it here could
        # disturb the parent or send its buffered records twice. Mark it closed (so its atexit hook
        # and finaliser do nothing) and let the child build its own.
        producer, self._producer = self._producer, None
        if producer is not None and hasattr(producer, "_closed"):
            producer._closed = True
            _INHERITED.append(producer)


def _check_reachable(bootstrap_servers: str | Sequence[str], timeout_s: float) -> None:
    """Raise unless one bootstrap server accepts a TCP connection.

    kafka-python leaks the sockets of refused connections, so during an outage the tee probes with
    its own socket and builds a producer only once a broker answers.
    """
    servers = bootstrap_servers.split(",") if isinstance(bootstrap_servers, str) else list(bootstrap_servers)
    errors: list[str] = []
    for server in servers:
        server = server.strip()
        host, _, port = server.rpartition(":") if ":" in server.rsplit("]", 1)[-1] else (server, "", "")
        host = host.strip("[]") or "localhost"
        try:
            with socket.create_connection((host, int(port or 9092)), timeout=min(timeout_s, 5.0)):
                return
        except (OSError, ValueError) as exc:
            errors.append(f"{server.strip()}: {exc}")
    raise ConnectionError(f"no Kafka bootstrap server reachable ({'; '.join(errors)})")
