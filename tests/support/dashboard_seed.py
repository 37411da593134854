"""The dashboard tests' data: one experiment with replays, scores and the analysis snapshot the real engine
computes from the same numbers (`seed`), and the plan and prices its experiments carry.

Its fixtures (`migrated`, `seeded`, `new_experiment`, `app_test`) are in tests/dashboard/conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from streamlit.testing.v1 import AppTest

from analysis.analyze import analyze_table
from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.document import analysis_document
from analysis.plan import DecisionPlan
from analysis.ranking import pairwise_from_table, rank_arms
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.models import AnalysisSnapshot, Arm, CapturedRequest, Experiment, Replay, Score

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
HOSTILE = (
    "<script>alert('xss')</script> and <img src=x onerror=alert(1)> "
    "and ![tracker](http://evil.example/pixel.png) and **bold**"
)
PLAN = {
    "primary_metric": "judge_score",
    "guardrails": [{"metric": "error", "margin": 0.05, "relative": False}],
    "min_sample": 100,
    "max_sample": 400,
    "alpha": 0.05,
}
PRICES = {
    "model-a": {"input_cost_per_token": 1e-6, "output_cost_per_token": 5e-6},
    "model-b": {
        "input_cost_per_token": 2e-6,
        "output_cost_per_token": 4e-6,
        "cache_read_input_token_cost": 2e-7,
    },
}


@dataclass(frozen=True)
class Seeded:
    url: str
    experiment_id: int
    analysis: dict[str, Any]
    ttft: dict[str, np.ndarray]  # successful replays' TTFT per arm
    tokens: dict[str, dict[str, int]]  # arm -> token class -> total
    cost: dict[str, float]
    errors: int
    replays: int
    recent: int  # replays finished in the last minute
    hostile: str = HOSTILE


def add_experiment(
    session: Any, name: str, *, budget: float = 5.0, arm_names: tuple[str, str] = ("ctrl", "cand")
) -> tuple[Experiment, Arm, Arm]:
    experiment = Experiment(
        name=name,
        status="running",
        budget_usd=budget,
        plan=PLAN,
        price_snapshot=PRICES,
    )
    control = Arm(name=arm_names[0], role="control", provider="sim", model="model-a")
    candidate = Arm(name=arm_names[1], role="candidate", provider="sim", model="model-b")
    experiment.arms = [control, candidate]
    session.add(experiment)
    session.flush()
    return experiment, control, candidate


def seed(
    url: str,
    n: int = 120,
    seed_value: int = 3,
    *,
    name: str = "checkout-assistant-v2",
    arms: tuple[str, str] = ("ctrl", "cand"),
) -> Seeded:
    """Captures, replays on both arms, judge scores and the analysis snapshot of exactly those numbers."""
    rng = np.random.default_rng(seed_value)
    now = datetime.now(UTC)
    engine = create_engine(url)
    score = np.column_stack([rng.normal(6.0, 1.0, n), rng.normal(6.4, 1.0, n)]).round(2)
    error = np.column_stack([rng.random(n) < 0.03, rng.random(n) < 0.05])
    ttft = np.exp(rng.normal(5.5, 0.4, (n, 2))).round(1)
    latency = (ttft + np.exp(rng.normal(7.0, 0.3, (n, 2)))).round(1)
    tokens_in = rng.integers(100, 2000, (n, 2))
    tokens_out = rng.integers(50, 800, (n, 2))
    cache_read = rng.integers(0, 300, (n, 2))
    cost = (tokens_in * [1e-6, 2e-6] + tokens_out * [5e-6, 4e-6] + cache_read * [1e-6, 2e-7]).round(8)
    with session_scope(session_factory(engine)) as session:
        experiment, control, candidate = add_experiment(session, name, arm_names=arms)
        arm_rows = (control, candidate)
        for i in range(n):
            text = HOSTILE if i == 0 else f"Question {i}: how do I reset my password?"
            capture = CapturedRequest(
                request_id=f"req-{i:04d}",
                captured_at=now - timedelta(hours=2),
                service="support" if i % 3 else "sales",
                route="/chat" if i % 2 else "/faq",
                api="anthropic.messages",
                model="model-a",
                request={
                    "model": "model-a",
                    "max_tokens": 512,
                    "messages": [{"role": "user", "content": text}],
                },
            )
            session.add(capture)
            session.flush()
            for j, arm in enumerate(arm_rows):
                failed = bool(error[i, j])
                answer = HOSTILE if (i == 0 and j == 1) else f"Answer {i} from {arm.name}"
                replay = Replay(
                    experiment_id=experiment.id,
                    arm_id=arm.id,
                    captured_request_id=capture.id,
                    status="error" if failed else "ok",
                    answer_text=None if failed else answer,
                    error_code="overloaded" if failed else None,
                    ttft_ms=None if failed else float(ttft[i, j]),
                    latency_ms=None if failed else float(latency[i, j]),
                    input_tokens=int(tokens_in[i, j]),
                    output_tokens=int(tokens_out[i, j]),
                    cache_read_input_tokens=int(cache_read[i, j]),
                    cost_usd=float(cost[i, j]),
                    attempts=2 if i % 10 == 0 else 1,
                    finished_at=now - timedelta(seconds=20) if i < 30 else now - timedelta(minutes=30),
                )
                session.add(replay)
                session.flush()
                if not failed:
                    session.add(
                        Score(
                            replay_id=replay.id,
                            scorer_name="judge",
                            scorer_version="1",
                            value=float(score[i, j]),
                            rationale=HOSTILE if (i == 0 and j == 1) else f"clear and correct ({arm.name})",
                        )
                    )
        session.flush()  # the last scores get their created_at before the snapshot's computed_at
        judge = np.where(error, np.nan, score)
        table = ExperimentTable(
            request_ids=tuple(f"req-{i:04d}" for i in range(n)),
            arms=arms,
            metrics=(
                MetricColumn("judge_score", "mean", judge),
                MetricColumn("error", "binary", error.astype(float)),
                MetricColumn("ttft_ms", "latency", np.where(error, np.inf, ttft)),
                MetricColumn("cost_usd", "cost", cost),
            ),
            clusters=None,
            covariate=None,
        )
        analysis = analyze_table(table, control=arms[0], alpha=0.05, adjust="holm")
        doc, verdict = analysis_document(
            analysis,
            DecisionPlan.from_dict(PLAN),
            rank_arms(table.arms, arms[0], pairwise_from_table(table, arms[0])),
        )
        assert verdict is not None and verdict.reasons
        session.add(
            AnalysisSnapshot(
                experiment_id=experiment.id,
                n_requests=n,
                verdict=verdict.verdict,
                analysis=doc,
                computed_at=datetime.now(UTC),  # after every replay and score: not stale
            )
        )
        experiment_id = experiment.id
    engine.dispose()
    return Seeded(
        url=url,
        experiment_id=experiment_id,
        analysis=doc,
        ttft={arm: ttft[~error[:, j], j] for j, arm in enumerate(arms)},
        tokens={
            arm: {
                "input": int(tokens_in[:, j].sum()),
                "output": int(tokens_out[:, j].sum()),
                "cache read input": int(cache_read[:, j].sum()),
            }
            for j, arm in enumerate(arms)
        },
        cost={arm: float(cost[:, j].sum()) for j, arm in enumerate(arms)},
        errors=int(error.sum()),
        replays=2 * n,
        recent=2 * 30,
    )


def no_exception(at: AppTest) -> None:
    """The page ran without an exception or an error box (a verdict box, bold text, is not one)."""
    assert not at.exception, [e.value for e in at.exception]
    problems = [e.value for e in at.error if not e.value.startswith("**")]  # a verdict box is not an error
    assert not problems, problems


def store_snapshot(url: str, experiment_id: int, doc: dict[str, Any]) -> None:
    """A newer snapshot with `doc` (the pages read the latest)."""
    engine = create_engine(url)
    with session_scope(session_factory(engine)) as session:
        session.add(
            AnalysisSnapshot(experiment_id=experiment_id, n_requests=doc["n_requests"],
                             verdict=doc["verdict"]["verdict"], analysis=doc, computed_at=datetime.now(UTC))
        )  # fmt: skip
    engine.dispose()
