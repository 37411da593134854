"""The pre-registered decision rule, table-driven: every verdict, guardrails, several candidates, plans."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from analysis.analyze import analyze_table
from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.decision import Verdict, decide
from analysis.plan import DecisionPlan, PlanError, resolve_metric


@dataclass(frozen=True)
class Arm:
    name: str
    score_shift: float = 0.0
    ttft_factor: float = 1.0
    cost: float = 0.003
    error_rate: float = 0.01
    missing_scores: float = 0.0
    helpfulness_shift: float = 0.0


@dataclass(frozen=True)
class Case:
    name: str
    n: int
    candidates: tuple[Arm, ...]
    expected: str
    plan: dict[str, Any] = field(default_factory=dict)
    reason_contains: str = ""
    recommended: str | None = None


PLAN = {
    "primary_metric": "judge_score",
    "guardrails": [
        {"metric": "ttft_p95", "margin": 0.10},
        {"metric": "error_rate", "margin": 0.03, "relative": False},
        {"metric": "cost", "margin": 0.05},
    ],
    "alpha": 0.05,
    "design": "sequential",
    "min_sample": 100,
    "max_sample": 5000,
}


def _table(n: int, candidates: tuple[Arm, ...], seed: int) -> ExperimentTable:
    rng = np.random.default_rng(seed)
    arms = (Arm("control"), *candidates)
    prompt = rng.normal(6.0, 1.0, n)
    base_ttft = np.exp(rng.normal(6.0, 0.3, n))
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("judge_score", "helpfulness", "error", "ttft_ms", "cost_usd")
    }
    for arm in arms:
        error = (rng.random(n) < arm.error_rate).astype(float)
        score = prompt + arm.score_shift + rng.normal(0, 1.0, n)
        score[rng.random(n) < arm.missing_scores] = np.nan
        columns["judge_score"].append(score)
        columns["helpfulness"].append(prompt + arm.helpfulness_shift + rng.normal(0, 1.0, n))
        columns["error"].append(error)
        ttft = base_ttft * arm.ttft_factor * np.exp(rng.normal(0, 0.1, n))
        columns["ttft_ms"].append(np.where(error == 1, np.inf, ttft))
        columns["cost_usd"].append(arm.cost * np.exp(rng.normal(0, 0.1, n)))
    kinds = {
        "judge_score": "mean",
        "helpfulness": "mean",
        "error": "binary",
        "ttft_ms": "latency",
        "cost_usd": "cost",
    }
    metrics = tuple(MetricColumn(name, kinds[name], np.stack(cols, axis=1)) for name, cols in columns.items())  # type: ignore[arg-type]
    return ExperimentTable(tuple(f"r{i}" for i in range(n)), tuple(a.name for a in arms), metrics, None, None)


def _decide(case: Case, seed: int = 1) -> Verdict:
    plan = DecisionPlan.from_dict({**PLAN, **case.plan})
    analysis = analyze_table(
        _table(case.n, case.candidates, seed), control="control", alpha=plan.alpha, adjust="holm"
    )
    return decide(analysis, plan)


CASES = [
    Case(
        "better quality, guardrails hold",
        1500,
        (Arm("cand", score_shift=0.5),),
        "ship",
        reason_contains="improves the primary metric",
        recommended="cand",
    ),
    Case(
        "better quality but TTFT p95 +60 %",
        1500,
        (Arm("cand", score_shift=0.5, ttft_factor=1.6),),
        "dont_ship",
        reason_contains="fails the ttft_p95 guardrail",
    ),
    Case(
        "costs 30 % more",
        1500,
        (Arm("cand", score_shift=0.5, cost=0.0039),),
        "dont_ship",
        reason_contains="fails the cost guardrail",
    ),
    Case(
        "worse quality",
        1500,
        (Arm("cand", score_shift=-0.5),),
        "dont_ship",
        reason_contains="worse on the primary metric",
    ),
    Case(
        "significant harm on a metric outside the plan",
        1500,
        (Arm("cand", score_shift=0.5, helpfulness_shift=-0.5),),
        "dont_ship",
        reason_contains="helpfulness",
    ),
    Case(
        "a small harm outside the plan, within its practical margin (-0.25 points)",
        1500,
        (Arm("cand", score_shift=0.5, helpfulness_shift=-0.12),),
        "ship",
        reason_contains="improves the primary metric",
        recommended="cand",
    ),
    Case(
        "the same small harm with the plan's own zero margin for it",
        1500,
        (Arm("cand", score_shift=0.5, helpfulness_shift=-0.12),),
        "dont_ship",
        plan={"no_harm_margins": {"helpfulness": 0.0}},
        reason_contains="helpfulness",
    ),
    Case(
        "small effect, early look",
        300,
        (Arm("cand", score_shift=0.08),),
        "keep_running",
        reason_contains="more prompts",
    ),
    Case(
        "below the plan's minimum sample",
        80,
        (Arm("cand", score_shift=1.0),),
        "keep_running",
        plan={"min_sample": 100},
        reason_contains="at least 100",
    ),
    Case(
        "maximum sample reached without an answer",
        600,
        (Arm("cand", score_shift=0.0),),
        "inconclusive",
        plan={"max_sample": 600},
        reason_contains="maximum of 600",
    ),
    Case(
        "fixed horizon, before its planned n",
        1500,
        (Arm("cand", score_shift=0.5),),
        "keep_running",
        plan={"design": "fixed", "max_sample": 2000},
        reason_contains="fixed-horizon",
    ),
    Case(
        "fixed horizon, at its planned n",
        2000,
        (Arm("cand", score_shift=0.5),),
        "ship",
        plan={"design": "fixed", "max_sample": 2000},
        recommended="cand",
    ),
    Case(
        "missing judge scores in one arm (health)",
        1500,
        (Arm("cand", score_shift=0.5, missing_scores=0.3),),
        "invalid",
        reason_contains="completeness:judge_score",
    ),
    Case(
        "two passing candidates: the cheaper is recommended",
        1500,
        (Arm("pricey", score_shift=0.5, cost=0.003), Arm("thrifty", score_shift=0.5, cost=0.0025)),
        "ship",
        reason_contains="cheaper",
        recommended="thrifty",
    ),
    Case(
        "one fails TTFT, the other passes",
        1500,
        (Arm("slow", score_shift=0.6, ttft_factor=1.6), Arm("fine", score_shift=0.5)),
        "ship",
        recommended="fine",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdicts(case: Case) -> None:
    verdict = _decide(case)
    assert verdict.verdict == case.expected, verdict.reasons
    assert any(case.reason_contains in r for r in verdict.reasons), verdict.reasons
    assert verdict.recommended == case.recommended
    if case.expected == "keep_running":
        assert verdict.more_prompts is not None and verdict.more_prompts > 0


def _case(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def test_keep_running_estimates_how_many_more_prompts() -> None:
    verdict = _decide(_case("small effect, early look"))
    assert verdict.more_prompts is not None and 100 < verdict.more_prompts <= 5000 - 300
    estimate = [c for c in verdict.candidates if c.arm == "cand"][0].more_prompts
    assert estimate is not None


def test_guardrail_failure_names_the_guardrail_and_the_interval() -> None:
    verdict = _decide(_case("better quality but TTFT p95 +60 %"))
    (candidate,) = verdict.candidates
    failed = [c for c in candidate.checks if c.status == "fail"]
    assert [c.name for c in failed] == ["guardrail:ttft_p95"]
    assert failed[0].ci_low is not None and failed[0].ci_low > 0
    primary = [c for c in candidate.checks if c.name == "primary:judge_score"][0]
    assert primary.status == "pass"


def test_holm_across_candidates_for_the_primary() -> None:
    one = _decide(Case("x", 400, (Arm("a", score_shift=0.25),), "?"), seed=3)
    three = _decide(Case("x", 400, (Arm("a", score_shift=0.25), Arm("b"), Arm("c")), "?"), seed=3)
    p_one = one.candidates[0].checks[0].p_value
    p_three = [c for c in three.candidates if c.arm == "a"][0].checks[0].p_value
    assert p_one is not None and p_three is not None and p_three > p_one


def test_plan_from_the_experiment_spec_mapping() -> None:
    spec_plan = {
        "primary_metric": "judge_score",
        "primary_direction": "higher_is_better",
        "guardrails": [
            {"metric": "ttft_p95", "margin": 0.1, "relative": True, "direction": "lower_is_better"}
        ],
        "alpha": 0.05,
        "design": "fixed",
        "min_sample": 100,
        "max_sample": 2000,
    }
    plan = DecisionPlan.from_dict(spec_plan)
    assert plan.design == "fixed" and plan.n_star == 2000 and plan.guardrails[0].margin == 0.1
    assert DecisionPlan.from_dict({**spec_plan, "planned_sample": 1500}).n_star == 1500


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"primary_metric": None}, "key primary_metric: expected a metric name"),
        ({"alpha": 1.5}, "key alpha: expected a number between 0 and 1"),
        ({"design": "bayesian"}, "key design: expected one of sequential, fixed"),
        ({"min_sample": 500, "max_sample": 100}, "key max_sample: expected >= min_sample (500)"),
        (
            {"guardrails": [{"metric": "ttft_p95", "margin": -1}]},
            "guardrails[0], key margin: expected a number >= 0",
        ),
    ],
)
def test_plan_errors_name_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(
        PlanError,
        match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]"),
    ):
        DecisionPlan.from_dict({**PLAN, **change})


def test_metric_names_resolve_to_columns_and_quantiles() -> None:
    columns = {"judge_score": "mean", "ttft_ms": "latency", "error": "binary", "cost_usd": "cost"}
    assert resolve_metric("ttft_p95", columns).column == "ttft_ms"  # type: ignore[arg-type]
    assert resolve_metric("ttft_ms:p99", columns).quantile == 0.99  # type: ignore[arg-type]
    assert resolve_metric("error_rate", columns).column == "error"  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="plan metric 'bleu'"):
        resolve_metric("bleu", columns)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("split", "judged", "verdict"), [(35, 60, "invalid"), (20, 60, "ship"), (20, 25, "ship")]
)
def test_a_judge_that_follows_the_position_makes_the_data_invalid(
    split: int, judged: int, verdict: str
) -> None:
    """More than half of the pairs judged both ways flip with the order: the judge is judging positions.
    Fewer than 30 such pairs: not enough to tell, the check does not run."""
    case = _case("better quality, guardrails hold")
    plan = DecisionPlan.from_dict(PLAN)
    analysis = analyze_table(
        _table(case.n, case.candidates, 1), control="control", alpha=plan.alpha, adjust="holm",
        judge_orders=(split, judged),
    )  # fmt: skip
    result = decide(analysis, plan)
    assert result.verdict == verdict, result.reasons
    if verdict == "invalid":
        assert any(
            "health check judge_consistency failed" in r and "stronger judge" in r for r in result.reasons
        )
