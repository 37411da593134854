"""Ingest counters: Prometheus metrics for operators and a plain tally for the end-of-run summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

from shadowlab.metrics import serve_metrics


@dataclass
class Tally:
    consumed: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One line: stored, duplicates, skipped and rejected by reason."""

        def by_reason(counts: Counter[str]) -> str:
            inner = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            return f" ({inner})" if inner else ""

        return (
            f"consumed {self.consumed}, stored {self.stored}, duplicates {self.duplicates}, "
            f"skipped {sum(self.skipped.values())}{by_reason(self.skipped)}, "
            f"rejected {sum(self.rejected.values())}{by_reason(self.rejected)}"
        )


class IngestMetrics:
    """Updates the tally and the Prometheus series together (one registry per pipeline: tests run many)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.tally = Tally()
        r = self.registry
        self._consumed = PromCounter(
            "shadowlab_ingest_consumed", "Messages read from the source.", registry=r
        )
        self._stored = PromCounter("shadowlab_ingest_stored", "Captures inserted.", registry=r)
        self._duplicates = PromCounter(
            "shadowlab_ingest_duplicates", "Captures already stored (same request_id).", registry=r
        )
        self._rejected = PromCounter(
            "shadowlab_ingest_rejected", "Messages dead-lettered, by reason.", ["reason"], registry=r
        )
        self._skipped = PromCounter(
            "shadowlab_ingest_skipped",
            "Valid captures not stored (sampling, filters).",
            ["reason"],
            registry=r,
        )
        self._retries = PromCounter(
            "shadowlab_ingest_retries", "Batches retried because a service was down.", ["service"], registry=r
        )
        self._lag = Gauge(
            "shadowlab_ingest_lag",
            "Messages behind the end of the partition.",
            ["topic", "partition"],
            registry=r,
        )
        self._batch = Histogram(
            "shadowlab_ingest_batch_seconds",
            "Time from poll to commit for one batch.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        serve_metrics(self.registry, port, addr)

    def consumed(self, n: int) -> None:
        self.tally.consumed += n
        self._consumed.inc(n)

    def stored(self, stored: int, duplicates: int) -> None:
        self.tally.stored += stored
        self.tally.duplicates += duplicates
        self._stored.inc(stored)
        self._duplicates.inc(duplicates)

    def rejected(self, reason: str) -> None:
        self.tally.rejected[reason] += 1
        self._rejected.labels(reason).inc()

    def skipped(self, reason: str, n: int = 1) -> None:
        self.tally.skipped[reason] += n
        self._skipped.labels(reason).inc(n)

    def retry(self, service: str) -> None:
        self._retries.labels(service).inc()

    def lag(self, topic: str, partition: int, lag: int) -> None:
        self._lag.labels(topic, str(partition)).set(lag)

    def batch_seconds(self, seconds: float) -> None:
        self._batch.observe(seconds)
