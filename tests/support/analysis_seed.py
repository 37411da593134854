"""An experiment seeded straight into the database for the analysis tests: control, a candidate and an A/A
copy, with replays, two judge versions (the latest counts) and pairwise preferences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from shadowlab import migrate
from shadowlab.db import create_engine
from shadowlab.models import Arm, CapturedRequest, Experiment, Preference, Replay, Score

PLAN: dict[str, Any] = {
    "primary_metric": "judge_score",
    "primary_direction": "higher_is_better",
    "guardrails": [
        {"metric": "ttft_p95", "margin": 0.1, "relative": True, "direction": "lower_is_better"},
        {"metric": "cost", "margin": 0.05, "relative": True, "direction": "lower_is_better"},
    ],
    "alpha": 0.05,
    "design": "sequential",
    "min_sample": 100,
    "max_sample": 5000,
}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seed_experiment(
    url: str,
    name: str,
    *,
    n: int,
    shift: float = 0.5,
    ttft_factor: float = 1.0,
    plan: dict[str, Any] | None = None,
    seed: int = 0,
    prefix: str = "",
    failure_rate: float = 0.02,
    aa_shift: float = 0.0,
) -> None:
    """Seed one experiment (control, cand, A/A arm) with replays, two judge versions and preferences."""
    engine = create_engine(url)
    migrate.upgrade(engine)
    rng = np.random.default_rng(seed)
    with Session(engine) as session, session.begin():
        experiment = Experiment(name=name, status="running", plan=plan if plan is not None else PLAN)
        session.add(experiment)
        session.flush()
        arms = {
            role_name: Arm(
                experiment_id=experiment.id, name=role_name, role=role, provider="sim", model=role_name
            )
            for role_name, role in (("control", "control"), ("cand", "candidate"), ("aa", "aa"))
        }
        session.add_all(arms.values())
        requests = [
            CapturedRequest(
                request_id=f"{prefix}req-{i}",
                captured_at=T0 + timedelta(seconds=i),
                service="chat",
                conversation_id=f"conv-{i // 3}" if i % 2 else None,
                api="anthropic.messages",
                request={},
            )
            for i in range(n)
        ]
        session.add_all(requests)
        session.flush()
        quality = rng.normal(6, 1, n)
        base_ttft = np.exp(rng.normal(6, 0.3, n))
        for arm_name, arm in arms.items():
            lift = {"cand": shift, "aa": aa_shift}.get(arm_name, 0.0)
            factor = ttft_factor if arm_name == "cand" else 1.0
            for i, request in enumerate(requests):
                failed = rng.random() < failure_rate
                replay = Replay(
                    experiment_id=experiment.id,
                    arm_id=arm.id,
                    captured_request_id=request.id,
                    status="error" if failed else "ok",
                    ttft_ms=None if failed else float(base_ttft[i] * factor * np.exp(rng.normal(0, 0.1))),
                    latency_ms=None if failed else float(base_ttft[i] * 4 * np.exp(rng.normal(0, 0.2))),
                    cost_usd=None if failed else float(0.003 * np.exp(rng.normal(0, 0.1))),
                    error_code="overloaded" if failed else None,
                )
                session.add(replay)
                session.flush()
                if failed:
                    continue
                value = float(np.clip(np.round(quality[i] + lift + rng.normal(0, 1)), 1, 10))
                session.add(
                    Score(
                        replay_id=replay.id,
                        scorer_name="judge_score",
                        scorer_version="v2",
                        value=value,
                        created_at=T0 + timedelta(days=2),
                    )
                )
                session.add(
                    Score(
                        replay_id=replay.id,
                        scorer_name="judge_score",
                        scorer_version="v1",
                        value=1.0,
                        created_at=T0 + timedelta(days=1),
                    )
                )
        for i, request in enumerate(requests):
            # A consistent judge: one verdict per prompt, the same in both orders (a judge that drew a new
            # verdict per order would flip on 2 prompts in 3 and fail the judge-consistency check).
            p_win = 0.5 + shift / 2
            draw = rng.random()
            cand_result = "win" if draw < p_win - 0.1 else ("tie" if draw < p_win + 0.1 else "loss")
            for order in ("ab", "ba") if i % 4 == 0 else ("ab",):
                a, b = (arms["cand"], arms["control"]) if order == "ab" else (arms["control"], arms["cand"])
                result = (
                    {"win": "a", "loss": "b", "tie": "tie"}[cand_result]
                    if order == "ab"
                    else {"win": "b", "loss": "a", "tie": "tie"}[cand_result]
                )
                session.add(
                    Preference(
                        experiment_id=experiment.id,
                        captured_request_id=request.id,
                        arm_a_id=a.id,
                        arm_b_id=b.id,
                        scorer_name="judge_pairwise",
                        scorer_version="v1",
                        order_shown=order,
                        result=result,
                    )
                )
    engine.dispose()
