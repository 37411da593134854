"""The simulated sequential experiment of `bench/bench_projection.py` and the projection's test: a paired
experiment with a known effect on a 1-10 judge score (cost a guardrail; the candidate is cheaper), looked at
after its first n prompts under one sequential plan."""

from __future__ import annotations

import numpy as np

from analysis.analyze import analyze_table
from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.decision import Verdict, decide
from analysis.plan import DecisionPlan

PLAN = DecisionPlan.from_dict(
    {
        "primary_metric": "judge_score",
        "guardrails": [{"metric": "cost_usd", "margin": 0.05}],
        "design": "sequential",
        "min_sample": 100,
        "max_sample": 200_000,
        "planned_sample": 5_000,
    }
)


def stream(rng: np.random.Generator, n: int, effect: float) -> dict[str, np.ndarray]:
    """n paired prompts: the control's and the candidate's judge scores (the candidate `effect` points
    better), and both costs."""
    prompt = rng.normal(6.0, 1.0, n)
    return {
        "control": prompt + rng.normal(0, 1.0, n),
        "cand": prompt + effect + rng.normal(0, 1.0, n),
        "cost_c": 0.003 * np.exp(rng.normal(0, 0.1, n)),
        "cost_t": 0.002 * np.exp(rng.normal(0, 0.1, n)),
    }


def look(data: dict[str, np.ndarray], n: int) -> Verdict:
    """The plan's verdict on the first `n` prompts of `data`."""
    metrics = (
        MetricColumn("judge_score", "mean", np.column_stack([data["control"][:n], data["cand"][:n]])),
        MetricColumn("cost_usd", "cost", np.column_stack([data["cost_c"][:n], data["cost_t"][:n]])),
    )
    table = ExperimentTable(tuple(f"r{i}" for i in range(n)), ("control", "cand"), metrics, None, None)
    return decide(analyze_table(table, control="control", alpha=PLAN.alpha, adjust="holm"), PLAN)
