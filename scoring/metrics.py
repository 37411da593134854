"""Prometheus metrics of `shadowlab score`, per scorer (served with `--metrics-port`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ScoreMetrics"]


class ScoreMetrics:
    """One registry per run (tests make many). Counters are exposed with the `_total` suffix."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.items = Counter(
            "shadowlab_score_items",
            "Items done, by scorer and outcome: stored (a score or preference written), failed (written as a "
            "failed score), pending (left for the next run)",
            ["scorer", "outcome"],
            registry=r,
        )
        self.calls = Counter(
            "shadowlab_judge_calls",
            "Scorer calls made (judge calls; a check's calls cost nothing)",
            ["scorer"],
            registry=r,
        )
        self.spend = Counter("shadowlab_judge_spend_usd", "Judge spend in USD", ["scorer"], registry=r)
        self.failures = Counter(
            "shadowlab_judge_failures",
            "Scorer calls that failed, by reason (budget, provider, unparseable, ...)",
            ["scorer", "reason"],
            registry=r,
        )

        self.limiter_wait = Histogram(
            "shadowlab_score_limiter_wait_seconds",
            "Time judge calls waited for the shared rate limiter, per attempt",
            registry=r,
            buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 30, 120),
        )

        # Each labelled child looked up once (`labels()` costs ~2 µs; three per judge call, on the loop).
        self._children: dict[tuple[Counter, tuple[str, ...]], Counter] = {}

    def _child(self, metric: Counter, *labels: str) -> Counter:
        child = self._children.get((metric, labels))
        if child is None:
            child = self._children[(metric, labels)] = metric.labels(*labels)
        return child

    def call(self, scorer: str, cost_usd: float, failure: str | None) -> None:
        self._child(self.calls, scorer).inc()
        self._child(self.spend, scorer).inc(cost_usd)
        if failure:
            self._child(self.failures, scorer, failure).inc()

    def item(self, scorer: str, outcome: str) -> None:
        self._child(self.items, scorer, outcome).inc()
