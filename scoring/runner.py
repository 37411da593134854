"""Score an experiment with one scorer: every pending item, concurrently, each result written as it arrives.

Each item runs in its own task with `scoring.judge_calls.judging` naming it, so the shared budget records what
each judge call was for. Never crashes on a judge's failure: an unparseable verdict is stored as a failed
score (value None, `details.failure`); a provider failure after the limiter's retries and a refused budget
are counted and left pending, so running again finishes them. Once the budget refuses a call, no new call
starts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from scoring.base import PairScorer, PointScorer
from scoring.judge_calls import judging
from scoring.metrics import ScoreMetrics
from scoring.pairwise import to_canonical
from scoring.store import PairItem, PointItem, pending_pairs, pending_points, write_preference, write_score
from shadowlab.budget import JudgeRef
from shadowlab.db import session_scope

__all__ = ["Progress", "RunSummary", "score_pairs", "score_points"]

Progress = Callable[[int, int], None]  # (finished, total)
_T = TypeVar("_T")


@dataclass(frozen=True)
class RunSummary:
    """What one run did: stored = rows written (failed ones included), pending = left for the next run."""

    scorer: str
    version: str
    kind: Literal["point", "pair"]
    total: int
    stored: int
    failed: int
    pending: int
    budget_exhausted: bool
    spent_usd: float
    errors: dict[str, int] = field(default_factory=dict)


class _Tally:
    def __init__(
        self, total: int, progress: Progress | None, scorer: str, metrics: ScoreMetrics | None
    ) -> None:
        self.total = total
        self.progress = progress
        self.scorer = scorer
        self.metrics = metrics
        self.finished = self.stored = self.failed = self.pending = 0
        self.spent = 0.0
        self.exhausted = False
        self.errors: Counter[str] = Counter()

    def skipped(self) -> bool:
        """Once the budget is out, every remaining item stays pending without a call."""
        if self.exhausted:
            self.errors["budget"] += 1
            self.left_pending()
        return self.exhausted

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
        self.pending += 1
        self.failed += failed
        if self.metrics:
            self.metrics.item(self.scorer, "pending")

    def step(self) -> None:
        self.finished += 1
        if self.progress:
            self.progress(self.finished, self.total)

    def summary(self, scorer: str, version: str, kind: Literal["point", "pair"]) -> RunSummary:
        return RunSummary(
            scorer,
            version,
            kind,
            self.total,
            self.stored,
            self.failed,
            self.pending,
            self.exhausted,
            self.spent,
            dict(self.errors),
        )


async def _run_all(items: Sequence[_T], concurrency: int, work: Callable[[_T], Awaitable[None]]) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def one(item: _T) -> None:
        async with slots:
            await work(item)

    await asyncio.gather(*(one(item) for item in items))


async def score_points(
    factory: sessionmaker[Session],
    experiment_id: int,
    scorer: PointScorer,
    *,
    concurrency: int = 8,
    progress: Progress | None = None,
    metrics: ScoreMetrics | None = None,
) -> RunSummary:
    """Score every replay not yet scored by this scorer version."""
    with factory() as session:
        items = pending_points(session, experiment_id, scorer.name, scorer.version)
    tally = _Tally(len(items), progress, scorer.name, metrics)

    async def work(item: PointItem) -> None:
        if not tally.skipped():
            judging.set(JudgeRef(experiment_id, scorer.name, scorer.version, item.captured_request_id,
                                 replay_id=item.replay_id))  # fmt: skip
            result = await scorer.score(item.subject)
            tally.spent_on(result.cost_usd, result.failure)
            if result.storable:
                with session_scope(factory) as session:
                    write_score(session, item.replay_id, scorer.name, scorer.version, result)
                tally.wrote(failed=result.failure is not None)
            else:
                tally.left_pending()
        tally.step()

    await _run_all(items, concurrency, work)
    return tally.summary(scorer.name, scorer.version, "point")


async def score_pairs(
    factory: sessionmaker[Session],
    experiment_id: int,
    scorer: PairScorer,
    *,
    concurrency: int = 8,
    progress: Progress | None = None,
    metrics: ScoreMetrics | None = None,
) -> RunSummary:
    """Judge every control/candidate pair in each order not yet judged by this scorer version.

    An unparseable pairwise verdict cannot be a preference row (its result is required), so it is counted
    as failed and stays pending."""
    with factory() as session:
        items = pending_pairs(session, experiment_id, scorer.name, scorer.version)
    tally = _Tally(len(items), progress, scorer.name, metrics)

    async def work(item: PairItem) -> None:
        if not tally.skipped():
            judging.set(JudgeRef(experiment_id, scorer.name, scorer.version, item.captured_request_id,
                                 arm_b_id=item.arm_b_id, order_shown=item.order))  # fmt: skip
            result = await scorer.compare(item.subject)
            failure = (result.failure or "provider") if result.winner is None else None
            tally.spent_on(result.cost_usd, failure)
            if result.winner is None:
                tally.left_pending(failed=result.failure == "unparseable")
            else:
                with session_scope(factory) as session:
                    write_preference(
                        session,
                        experiment_id,
                        item,
                        scorer.name,
                        scorer.version,
                        to_canonical(result.winner, item.order),
                        result.rationale,
                    )
                tally.wrote(failed=False)
        tally.step()

    await _run_all(items, concurrency, work)
    return tally.summary(scorer.name, scorer.version, "pair")
