"""Prometheus metrics of a replayer worker (the dashboard's live page reads them)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shadowlab import metrics as shared

__all__ = ["WorkerMetrics", "serve_metrics"]


@dataclass(frozen=True)
class WorkerMetrics:
    registry: CollectorRegistry
    replays: Counter
    retries: Counter
    requests: Counter
    spend: Counter
    limiter_wait: Histogram
    provider_paused: Gauge

    @classmethod
    def create(cls) -> WorkerMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            replays=Counter("shadowlab_replays", "Replays recorded, by status and error code",
                            ["status", "code"], registry=registry),
            retries=Counter("shadowlab_replay_retries", "Calls retried, by error code", ["code"],
                            registry=registry),
            requests=Counter("shadowlab_requests_completed", "Requests complete for every arm",
                             registry=registry),
            spend=Counter("shadowlab_spend_usd", "Cost of recorded replays in USD", registry=registry),
            limiter_wait=Histogram("shadowlab_limiter_wait_seconds", "Time waiting for the rate limiter",
                                   registry=registry, buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 30, 120)),
            provider_paused=Gauge("shadowlab_replay_provider_paused",
                                  "1 while the provider is down and its calls wait (an outage), else 0",
                                  ["provider"], registry=registry),
        )  # fmt: skip


def serve_metrics(metrics: WorkerMetrics, port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on `host`:`port` (each worker process on its own port)."""
    shared.serve_metrics(metrics.registry, port, host)
