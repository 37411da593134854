"""`score_experiment` on the real Postgres and the simulator's judge mode over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from scoring.judge import JudgeSpec
from scoring.judge_calls import Budget
from scoring.registry import scoring_spec
from scoring.results import pairwise_summary, point_scores, scorer_versions
from scoring.runner import RunSummary
from scoring.service import score_experiment
from shadowlab.models import Preference, Score
from shadowlab.usage import Usage
from tests.support.judge_calls import RetryLimiter, SpendCap, Unlimited
from tests.support.replayed_arms import N_REQUESTS, Seeded, sim_provider

pytestmark = pytest.mark.postgres

SPEC: dict[str, Any] = {
    "scoring": {
        "judges": [
            {
                "name": "quality",
                "kind": "pointwise",
                "model": "sim-judge",
                "extra_headers": {"x-sim-judge-noise": "0.02"},
            },
            {
                "name": "pref",
                "kind": "pairwise",
                "model": "sim-judge",
                "extra_headers": {"x-sim-judge-noise": "0.02"},
            },
        ],
        "checks": [{"name": "short", "kind": "length", "max_chars": 100_000}],
    }
}


async def _no_sleep(_: float) -> None:
    return None


def _cost(model: str, usage: Usage) -> float:
    return usage.total_input_tokens * 1e-6 + usage.output_tokens * 5e-6


def _run(
    seeded: Seeded,
    spec: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    budget: Budget | None = None,
    attempts: int = 4,
) -> list[RunSummary]:
    return asyncio.run(
        score_experiment(
            seeded.factory,
            seeded.experiment_id,
            scoring_spec(spec),
            provider_for=lambda judge: sim_provider(seeded.sim, headers),
            cost_of=_cost,
            budget=budget or Unlimited(),
            limiter=RetryLimiter(concurrency=8, max_attempts=attempts, sleep=_no_sleep),
        )
    )


def _count(seeded: Seeded, table: Any, name: str) -> int:
    with seeded.factory() as session:
        return session.scalars(
            sa.select(sa.func.count()).select_from(table).where(table.scorer_name == name)
        ).one()


def test_score_over_http_then_new_version_keeps_old(seeded: Seeded) -> None:
    first = {s.scorer: s for s in _run(seeded, SPEC)}
    assert first["quality"].stored == 2 * N_REQUESTS and first["quality"].failed == 0
    assert first["pref"].stored == 2 * N_REQUESTS  # every prompt in both orders
    assert first["short"].stored == 2 * N_REQUESTS
    assert first["quality"].spent_usd > 0
    with seeded.factory() as session:
        scores = point_scores(session, seeded.experiment_id, "quality")
        scored = {key: v for key, v in scores.items() if v is not None}
        assert len(scored) == len(scores)  # every answer has a score
        control = [v for (arm, _), v in scored.items() if arm == seeded.control_id]
        candidate = [v for (arm, _), v in scored.items() if arm == seeded.candidate_id]
        assert sum(candidate) / len(candidate) > sum(control) / len(control) + 1  # 0.85 vs 0.55 quality
        summary = pairwise_summary(session, seeded.experiment_id, "pref", seeded.candidate_id)
        assert summary.n == N_REQUESTS and summary.preference > 0.8

    again = _run(seeded, SPEC)  # idempotent: nothing left to do
    assert [s.total for s in again] == [0, 0, 0]

    changed = {**SPEC["scoring"], "judges": [{**SPEC["scoring"]["judges"][0], "rubric": "Only correctness."}]}
    new = _run(seeded, {"scoring": changed})
    assert new[1].version != first["quality"].version and new[1].stored == 2 * N_REQUESTS
    assert _count(seeded, Score, "quality") == 4 * N_REQUESTS  # old scores kept
    with seeded.factory() as session:
        versions = [v.version for v in scorer_versions(session, seeded.experiment_id, "quality")]
        assert set(versions) == {first["quality"].version, new[1].version}
        old = point_scores(session, seeded.experiment_id, "quality", first["quality"].version)
        newest = point_scores(session, seeded.experiment_id, "quality", new[1].version)
        assert len(old) == len(newest) == 2 * N_REQUESTS


def test_unparseable_answers_are_recorded_not_fatal(seeded: Seeded) -> None:
    summaries = {s.scorer: s for s in _run(seeded, SPEC, headers={"x-sim-judge-garble": "1"})}
    assert summaries["quality"].failed == summaries["quality"].stored == 2 * N_REQUESTS
    assert summaries["pref"].failed == summaries["pref"].pending == 2 * N_REQUESTS  # no result → not a row
    with seeded.factory() as session:
        rows = session.scalars(sa.select(Score).where(Score.scorer_name == "quality")).all()
        assert {(r.value, r.details["failure"]) for r in rows} == {(None, "unparseable")}
        assert "I think both are fine." in rows[0].details["raw"]
    rerun = {s.scorer: s for s in _run(seeded, SPEC)}
    assert rerun["quality"].total == 0  # failures stay recorded, never re-scored
    assert rerun["pref"].stored == 2 * N_REQUESTS


def test_rate_limit_storm_leaves_work_pending_and_a_rerun_finishes(seeded: Seeded) -> None:
    storm = {
        s.scorer: s
        for s in _run(
            seeded, SPEC, headers={"x-sim-fault": "rate_limit", "x-sim-retry-after": "0"}, attempts=2
        )
    }
    assert storm["quality"].pending == 2 * N_REQUESTS and storm["quality"].errors == {
        "provider": 2 * N_REQUESTS
    }
    assert storm["pref"].pending == 2 * N_REQUESTS
    assert _count(seeded, Score, "quality") == 0
    calm = {s.scorer: s for s in _run(seeded, SPEC)}
    assert calm["quality"].stored == calm["pref"].stored == 2 * N_REQUESTS


def test_budget_running_out_stops_calls_and_a_rerun_finishes_the_rest(seeded: Seeded) -> None:
    judge_only = {"scoring": {"judges": SPEC["scoring"]["judges"][:1]}}
    cap = SpendCap(limit_usd=0.01)
    (first,) = _run(seeded, judge_only, budget=cap)
    assert first.budget_exhausted and 0 < first.stored < 2 * N_REQUESTS
    assert first.stored + first.pending == 2 * N_REQUESTS
    assert cap.spent_usd <= cap.limit_usd
    with seeded.factory() as session:
        before = {r.id: r.created_at for r in session.scalars(sa.select(Score))}
    (second,) = _run(seeded, judge_only, budget=SpendCap(limit_usd=10.0))
    assert second.total == first.pending and second.stored == first.pending
    with seeded.factory() as session:
        after = {r.id: r.created_at for r in session.scalars(sa.select(Score))}
    assert len(after) == 2 * N_REQUESTS and all(after[k] == v for k, v in before.items())
    assert _count(seeded, Preference, "pref") == 0


def test_judge_spec_version_depends_on_prompt() -> None:
    base = JudgeSpec(name="q", kind="pointwise", model="m")
    assert base.version == JudgeSpec(name="q", kind="pointwise", model="m").version
    assert base.version != JudgeSpec(name="q", kind="pointwise", model="m", prompt="Judge: {rubric}").version
    assert base.version != JudgeSpec(name="q", kind="pointwise", model="m2").version
