"""Judge calls through the replayer's shared limiter and budget: real Postgres, the simulator's judge mode."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from scoring.drive import TaskOptions
from scoring.registry import scoring_spec
from scoring.runner import RunSummary
from scoring.service import SharedJudgeCalls, score_experiment, shared_judge_calls
from shadowlab.budget import Reservation, committed_usd, reserve_batch, settle_batch
from shadowlab.budget_judges import judge_spend_usd
from shadowlab.db import session_scope
from shadowlab.experiment import LimitSpec, ReplaySettings
from shadowlab.models import Experiment, JudgeCall, Score, ScoreTask
from shadowlab.usage import Usage
from tests.support.replayed_arms import N_REQUESTS, Seeded, sim_provider
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres

REPLAY_USD = 0.002  # what each request's replays cost (both arms), settled by "the replayer"
POINT = {"name": "quality", "kind": "pointwise", "model": "sim-judge"}
PAIR = {"name": "pref", "kind": "pairwise", "model": "sim-judge"}
SPEC: dict[str, Any] = {
    "limits": [{"provider": "anthropic", "model": "sim-judge", "rpm": 100_000, "concurrency": 6}],
    "replay": {"max_attempts": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
}
LIMITS = tuple(LimitSpec.model_validate(limit) for limit in SPEC["limits"])
REPLAY = ReplaySettings.model_validate(SPEC["replay"])


def _cost(model: str, usage: Usage) -> float:
    return usage.total_input_tokens * 1e-6 + usage.output_tokens * 5e-6


def _prepare(seeded: Seeded, budget_usd: float) -> None:
    """The experiment's replays are done and settled; its budget is `budget_usd`."""
    with session_scope(seeded.factory) as session:
        experiment = session.get_one(Experiment, seeded.experiment_id)
        experiment.budget_usd = budget_usd
        experiment.spec = SPEC
        ids = session.scalars(sa.text("SELECT id FROM captured_requests ORDER BY id")).all()
        # What the replayer does for each request: reserve, then settle to what its replays cost.
        reserve_batch(session, experiment, [Reservation(i, REPLAY_USD) for i in ids])
        settle_batch(session, seeded.experiment_id, dict.fromkeys(ids, REPLAY_USD))


def _score(
    seeded: Seeded, judges: list[dict[str, Any]], calls: SharedJudgeCalls | None = None
) -> list[RunSummary]:
    """One `shadowlab score` run: its grants given back at the end, so the next run starts at once."""
    shared = calls or shared_judge_calls(seeded.factory, seeded.experiment_id, LIMITS, REPLAY)

    async def run() -> list[RunSummary]:
        try:
            return await score_experiment(
                seeded.factory, seeded.experiment_id, scoring_spec({"scoring": {"judges": judges}}),
                provider_for=lambda judge: sim_provider(seeded.sim), cost_of=_cost,
                budget=shared.budget, limiter=shared.limiter,
            )  # fmt: skip
        finally:
            await shared.close()

    return asyncio.run(run())


def test_judge_spend_is_committed_in_the_experiment_budget_and_recorded_per_call(seeded: Seeded) -> None:
    _prepare(seeded, budget_usd=10.0)

    shared = shared_judge_calls(seeded.factory, seeded.experiment_id, LIMITS, REPLAY)
    point, pair = _score(seeded, [POINT, PAIR], shared)

    assert point.stored == pair.stored == 2 * N_REQUESTS and point.spent_usd > 0 and pair.spent_usd > 0
    with seeded.factory() as session:
        calls = session.scalars(sa.select(JudgeCall)).all()
        assert len(calls) == 4 * N_REQUESTS
        # every call settled, within its reservation: the worst case was a real bound
        assert all(c.settled_usd is not None and c.settled_usd <= c.reserved_usd for c in calls)
        assert judge_spend_usd(session, seeded.experiment_id, "quality") == pytest.approx(point.spent_usd)
        # Pairwise cost is queryable per request, candidate and order (preferences have no cost column).
        pairs = [c for c in calls if c.scorer_name == "pref"]
        assert {(c.arm_b_id, c.order_shown) for c in pairs} == {
            (seeded.candidate_id, "ab"),
            (seeded.candidate_id, "ba"),
        }
        assert len({c.captured_request_id for c in pairs}) == N_REQUESTS
        assert judge_spend_usd(session, seeded.experiment_id, "pref") == pytest.approx(pair.spent_usd)
        points = [c for c in calls if c.scorer_name == "quality"]
        scored = set(session.scalars(sa.select(Score.replay_id).where(Score.scorer_name == "quality")))
        assert {c.replay_id for c in points} == scored
        assert {c.scorer_version for c in points} == {point.version}
        # Replays and judging together, as `replay` progress and the dashboard read it.
        replays = N_REQUESTS * REPLAY_USD
        assert committed_usd(session, seeded.experiment_id) == pytest.approx(
            replays + point.spent_usd + pair.spent_usd
        )
        # Every judge call was admitted by the shared limiter of its provider+model.
        assert shared.limiter.limiter.admitted("anthropic/sim-judge") == 4 * N_REQUESTS
    # Each wave of 8 items (the default concurrency) reserved in one transaction, the settlements so far with
    # it; close() settled the last wave's calls.
    assert shared.budget.transactions == 2 * (2 * N_REQUESTS // 8) + 1


def test_budget_running_out_mid_scoring_stops_judge_calls_and_score_finishes_later(seeded: Seeded) -> None:
    budget = N_REQUESTS * REPLAY_USD + 0.012  # room for a few judge calls only
    _prepare(seeded, budget_usd=budget)

    (first,) = _score(seeded, [POINT])

    assert first.budget_exhausted and 0 < first.stored < 2 * N_REQUESTS
    assert first.stored + first.pending == 2 * N_REQUESTS
    with seeded.factory() as session:
        calls = session.scalars(sa.select(JudgeCall)).all()
        assert len(calls) == first.stored and all(c.settled_usd is not None for c in calls)
        assert committed_usd(session, seeded.experiment_id) <= budget + 1e-12
        assert session.get_one(Experiment, seeded.experiment_id).status == "budget_exhausted"

    with session_scope(seeded.factory) as session:
        session.get_one(Experiment, seeded.experiment_id).budget_usd = 10.0
    (second,) = _score(seeded, [POINT])

    assert second.total == first.pending and second.stored == first.pending and not second.budget_exhausted
    with seeded.factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Score)) == 2 * N_REQUESTS
        assert session.scalar(sa.select(sa.func.count()).select_from(JudgeCall)) == 2 * N_REQUESTS
        assert committed_usd(session, seeded.experiment_id) == pytest.approx(
            N_REQUESTS * REPLAY_USD + first.spent_usd + second.spent_usd
        )


def test_a_stop_hands_back_the_items_that_hold_a_reservation_but_no_place_among_the_calls(
    seeded: Seeded,
) -> None:
    _prepare(seeded, budget_usd=10.0)
    shared = shared_judge_calls(seeded.factory, seeded.experiment_id, LIMITS, REPLAY)
    holds = seeded.sim.simulator.holds
    served = sum(1 for r in seeded.sim.simulator.records() if r.model == "sim-judge")
    started: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
    summaries: list[list[RunSummary]] = []

    async def run() -> list[RunSummary]:
        stop = asyncio.Event()
        started.append((asyncio.get_running_loop(), stop))
        try:
            return await score_experiment(
                seeded.factory, seeded.experiment_id, scoring_spec({"scoring": {"judges": [POINT]}}),
                provider_for=lambda judge: sim_provider(seeded.sim), cost_of=_cost, budget=shared.budget,
                limiter=shared.limiter, concurrency=2, options=TaskOptions(stop=stop),
            )  # fmt: skip
        finally:
            await shared.close()

    holds.start("sim-judge*")
    scorer = threading.Thread(target=lambda: summaries.append(asyncio.run(run())))
    scorer.start()
    try:
        wait_for(lambda: holds.waiting() == 2, "the first wave's two calls")
        wait_for(lambda: _count(seeded, JudgeCall) == 4, "the second wave's reservations")
        loop, stop = started[0]
        loop.call_soon_threadsafe(stop.set)
    finally:
        holds.end()
        scorer.join(timeout=60)

    (summary,) = summaries[0]
    assert summary.stored == 2 and summary.pending == 2 * N_REQUESTS - 2 and not summary.errors
    assert sum(1 for r in seeded.sim.simulator.records() if r.model == "sim-judge") - served == 2
    with seeded.factory() as session:
        settled = sorted(session.scalars(sa.select(JudgeCall.settled_usd)).all(), key=lambda usd: usd or 0)
        open_tasks = session.execute(
            sa.select(ScoreTask.worker_id, ScoreTask.deadline).where(ScoreTask.done.is_(False))
        ).all()
        assert committed_usd(session, seeded.experiment_id) == pytest.approx(
            N_REQUESTS * REPLAY_USD + summary.spent_usd
        )
    assert settled[:2] == [0.0, 0.0] and all(usd is not None and usd > 0 for usd in settled[2:])
    # What the stop did not send is open to any process at once (not left to its lease).
    assert len(open_tasks) == 2 * N_REQUESTS - 2 and set(open_tasks) == {(None, None)}


def _count(seeded: Seeded, table: type[JudgeCall]) -> int:
    with seeded.factory() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
