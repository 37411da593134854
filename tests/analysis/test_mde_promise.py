"""The MDE the pages show is the effect the plan's own decision rule detects 80 % of the time.

Simulated paired experiments (fixed seeds) with a true effect equal to the MDE the analysis document shows
(`mde`, or `mde_planned` at the planned sample) are judged by `analysis.decision.decide`; the share of runs
whose condition passes must be about 0.8. A constant shift leaves the paired differences' SE unchanged, so
each run reads its MDE from its own noise and then adds that effect. 400 runs per case: a binomial SD of
2 points, so ±6 points is 3 SDs (bench/bench_mde.py runs 4,000 per case). The fixed-horizon two-sided MDE
shown before is detected by the sequential rule far less often, which this test would have caught.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from analysis.analyze import analyze_table
from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.decision import decide
from analysis.document import analysis_document
from analysis.plan import DecisionPlan
from analysis.rule_mde import MDE_POWER

RUNS = 400
TOLERANCE = 0.06  # 3 binomial SDs at 400 runs (√(0.8·0.2/400) = 0.02)
PLANNED = 1000


def _plan(design: str, guardrail: bool = False, harm: bool = False) -> DecisionPlan:
    plan: dict[str, Any] = {"primary_metric": "judge_score", "design": design, "min_sample": 100,
                            "max_sample": PLANNED, "planned_sample": PLANNED}  # fmt: skip
    if harm:  # judge_score is not named: it blocks only when clearly worse than its practical margin
        plan["primary_metric"] = "cost_usd"
    if guardrail:  # the goal is cost (clearly cheaper); quality may drop at most 0.5 points
        plan["primary_metric"] = "cost_usd"
        plan["guardrails"] = [
            {"metric": "judge_score", "margin": 0.5, "relative": False, "direction": "higher_is_better"}
        ]
    return DecisionPlan.from_dict(plan)


def _table(control: np.ndarray, candidate: np.ndarray, rng: np.random.Generator) -> ExperimentTable:
    n = len(control)
    metrics = [MetricColumn("judge_score", "mean", np.column_stack([control, candidate]))]
    metrics.append(
        MetricColumn(
            "cost_usd",
            "cost",
            np.column_stack([0.003 * np.exp(rng.normal(0, 0.1, n)), 0.002 * np.exp(rng.normal(0, 0.1, n))]),
        )
    )
    return ExperimentTable(tuple(f"r{i}" for i in range(n)), ("control", "cand"), tuple(metrics), None, None)


def _shown(table: ExperimentTable, plan: DecisionPlan) -> dict[str, Any]:
    """The judge_score row of the analysis document, as the Overview and the report read it."""
    doc, _ = analysis_document(analyze_table(table, control="control", alpha=plan.alpha, adjust="holm"), plan,
                               None)  # fmt: skip
    return next(c for c in doc["comparisons"] if c["metric"] == "judge_score")


def _status(table: ExperimentTable, plan: DecisionPlan, check: str) -> str:
    verdict = decide(analyze_table(table, control="control", alpha=plan.alpha, adjust="holm"), plan)
    return next(c for c in verdict.candidates[0].checks if c.name == check).status


def detected(design: str, n: int, *, seed: int, guardrail: bool = False, harm: bool = False,
             at_planned: bool = False, old_mde: bool = False, runs: int = RUNS) -> float:  # fmt: skip
    """Share of runs in which the rule decides the judge_score condition when the true effect is the MDE
    shown at n (`at_planned`: the MDE shown at n for the planned sample, judged at the planned sample):
    the goal passes, the guardrail passes (`guardrail`), or the no-harm check fails (`harm`)."""
    plan = _plan(design, guardrail, harm)
    rng = np.random.default_rng(seed)
    size = PLANNED if at_planned else n
    hits = 0
    for _ in range(runs):
        prompt = rng.normal(6.0, 1.0, size)
        control, noise = prompt + rng.normal(0, 1.0, size), prompt + rng.normal(0, 1.0, size)
        early = _table(control[:n], noise[:n], rng)
        row = _shown(early, plan)
        if old_mde:  # the stats' fixed-horizon two-sided MDE, what the pages showed before
            result = analyze_table(early, control="control", alpha=plan.alpha, adjust="holm").comparisons
            mde = next(c.result.mde for c in result if c.metric == "judge_score")
        else:
            mde = row["mde_planned"] if at_planned else row["mde"]
        assert mde is not None and mde > 0
        # a guardrail's MDE is the room inside its margin (0.5), a harm's the excess beyond its margin (0.25)
        effect = -(0.5 - mde) if guardrail else (-(0.25 + mde) if harm else mde)
        check = "guardrail:judge_score" if guardrail else ("no_harm" if harm else "primary:judge_score")
        hits += _status(_table(control, noise + effect, rng), plan, check) == ("fail" if harm else "pass")
    return hits / runs


@pytest.mark.parametrize(
    ("design", "n", "options"),
    [
        ("sequential", PLANNED // 4, {}),
        ("sequential", PLANNED, {}),
        ("sequential", PLANNED // 4, {"at_planned": True}),
        ("sequential", PLANNED // 4, {"guardrail": True}),
        ("fixed", PLANNED, {}),
        ("fixed", PLANNED, {"harm": True}),
        ("sequential", PLANNED // 4, {"harm": True}),
    ],
    ids=[
        "sequential-quarter",
        "sequential-planned",
        "sequential-projected",
        "guardrail",
        "fixed",
        "fixed-harm",
        "sequential-harm",
    ],  # fmt: skip
)
def test_an_effect_equal_to_the_shown_mde_is_detected_80_percent_of_the_time(
    design: str, n: int, options: dict[str, bool]
) -> None:
    share = detected(design, n, seed=n + 7 * len(options), **options)
    assert abs(share - MDE_POWER) <= TOLERANCE, share


def test_the_old_fixed_horizon_mde_is_too_small_for_the_sequential_rule() -> None:
    """At a quarter of N* the sequential boundary is ~1.46x the two-sided one: Φ(2.8 − 3.27) ≈ 0.32."""
    assert detected("sequential", PLANNED // 4, seed=3, old_mde=True, runs=200) < 0.5


def test_the_words_name_the_test() -> None:
    rng = np.random.default_rng(5)
    prompt = rng.normal(6.0, 1.0, 300)
    table = _table(prompt + rng.normal(0, 1, 300), prompt + rng.normal(0, 1, 300), rng)
    assert _shown(table, _plan("sequential"))["mde_test"] == "always-valid"
    fixed = _shown(table, _plan("fixed"))
    assert (fixed["mde_test"], fixed["mde_planned_n"]) == ("fixed-horizon", PLANNED)
    doc, _ = analysis_document(analyze_table(table, control="control", alpha=0.05, adjust="holm"), None, None)
    row = next(c for c in doc["comparisons"] if c["metric"] == "judge_score")
    assert (row["mde_test"], row["mde_planned"]) == ("fixed-horizon (no plan)", None)
