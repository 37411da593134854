"""What one scoring run counts: rows written, items left pending, spend and failures (and its metrics)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from scoring.metrics import ScoreMetrics
from scoring.tasks import Kind

__all__ = ["RunSummary", "Tally"]


@dataclass(frozen=True)
class RunSummary:
    """What one run did: stored = rows this process wrote (failed ones included); total = items open when it
    began; pending = items still without a result when it ended (the next run's work)."""

    scorer: str
    version: str
    kind: Kind
    total: int
    stored: int
    failed: int
    pending: int
    budget_exhausted: bool
    spent_usd: float
    errors: dict[str, int] = field(default_factory=dict)


class Tally:
    """The counts of one scorer's run in this process, mirrored into its Prometheus metrics."""

    def __init__(self, total: int, scorer: str, metrics: ScoreMetrics | None) -> None:
        self.total = total
        self.scorer = scorer
        self.metrics = metrics
        self.stored = self.failed = 0
        self.spent = 0.0
        self.exhausted = False
        self.errors: Counter[str] = Counter()

    def spent_on(self, cost_usd: float, failure: str | None) -> None:
        """Count one judge call's cost and, if it failed, why (a budget refusal stops the run)."""
        self.spent += cost_usd
        if failure:
            self.errors[failure] += 1
        self.exhausted = self.exhausted or failure == "budget"
        if self.metrics:
            self.metrics.call(self.scorer, cost_usd, failure)

    def wrote(self, failed: bool) -> None:
        """One row written: a score (maybe a failed one) or a preference."""
        self.stored += 1
        self.failed += failed
        if self.metrics:
            self.metrics.item(self.scorer, "failed" if failed else "stored")

    def left_pending(self, failed: bool = False) -> None:
        """One item not written: the next run tries it again (`failed`: its verdict was unparseable)."""
        self.failed += failed
        if self.metrics:
            self.metrics.item(self.scorer, "pending")

    def summary(self, version: str, kind: Kind, pending: int) -> RunSummary:
        return RunSummary(self.scorer, version, kind, self.total, self.stored, self.failed, pending,
                          self.exhausted, self.spent, dict(self.errors))  # fmt: skip
