"""Score an experiment with one scorer: its pending items leased in batches (`scoring.tasks`), judged
concurrently, each result written as it arrives.

Each item runs in its own task with `scoring.judge_calls.judging` naming it, so the shared budget records what
each judge call was for. Never crashes on a judge's failure: an unparseable verdict is stored as a failed
score (value None, `details.failure`); a provider failure after the limiter's retries and a refused budget
are counted and left pending, so running again finishes them. Once the budget refuses a call, no new call
starts. Any number of processes may run this at once: each item is judged by one of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.orm import Session, sessionmaker

from scoring.base import PairScorer, PointScorer
from scoring.drive import Progress, TaskOptions, drive
from scoring.judge_calls import judging
from scoring.metrics import ScoreMetrics
from scoring.pairwise import to_canonical
from scoring.store import PairItem, PairWritten, PointItem, PointWritten
from scoring.tally import RunSummary, Tally
from scoring.tasks import ScorerKey
from shadowlab.budget_judges import JudgeRef

__all__ = ["Progress", "RunSummary", "TaskOptions", "score_pairs", "score_points"]

ProgressOf = Callable[[str], Progress]


async def score_points(
    factory: sessionmaker[Session],
    experiment_id: int,
    scorer: PointScorer,
    *,
    concurrency: int = 8,
    progress: ProgressOf | None = None,
    metrics: ScoreMetrics | None = None,
    options: TaskOptions | None = None,
) -> RunSummary:
    """Score every replay not yet scored by this scorer version."""

    async def judge(item: PointItem, tally: Tally) -> PointWritten | None:
        judging.set(JudgeRef(experiment_id, scorer.name, scorer.version, item.captured_request_id,
                             replay_id=item.replay_id))  # fmt: skip
        result = await scorer.score(item.subject)
        tally.spent_on(result.cost_usd, result.failure)
        if not result.storable:
            tally.left_pending()
            return None
        tally.wrote(failed=result.failure is not None)
        return PointWritten(item.task_id, item.replay_id, result)

    key = ScorerKey(experiment_id, scorer.name, scorer.version, "point")
    return await drive(factory, key, judge, concurrency=concurrency, progress=progress(scorer.name)
                       if progress else None, metrics=metrics, options=options or TaskOptions())  # fmt: skip


async def score_pairs(
    factory: sessionmaker[Session],
    experiment_id: int,
    scorer: PairScorer,
    *,
    concurrency: int = 8,
    progress: ProgressOf | None = None,
    metrics: ScoreMetrics | None = None,
    options: TaskOptions | None = None,
) -> RunSummary:
    """Judge every control/candidate pair in each order not yet judged by this scorer version.

    An unparseable pairwise verdict cannot be a preference row (its result is required), so it is counted
    as failed and stays pending."""

    async def judge(item: PairItem, tally: Tally) -> PairWritten | None:
        judging.set(JudgeRef(experiment_id, scorer.name, scorer.version, item.captured_request_id,
                             arm_b_id=item.arm_b_id, order_shown=item.order))  # fmt: skip
        result = await scorer.compare(item.subject)
        tally.spent_on(result.cost_usd, (result.failure or "provider") if result.winner is None else None)
        if result.winner is None:
            tally.left_pending(failed=result.failure == "unparseable")
            return None
        tally.wrote(failed=False)
        return PairWritten(item.task_id, item, to_canonical(result.winner, item.order), result.rationale)

    key = ScorerKey(experiment_id, scorer.name, scorer.version, "pair")
    judge_item: Callable[[PairItem, Tally], Awaitable[PairWritten | None]] = judge
    return await drive(factory, key, judge_item, concurrency=concurrency, progress=progress(scorer.name)
                       if progress else None, metrics=metrics, options=options or TaskOptions())  # fmt: skip
