"""The MDE the decision rule needs: the smallest true effect the plan's own test detects with 80 % power.

A comparison's `mde` from `analysis.stats` is that of a two-sided fixed-horizon test against zero,
(t₁₋α/₂ + t₀.₈)·SE. The rule reads other intervals:

- a sequential plan reads always-valid confidence sequences, which are wider: the sequence clears a boundary
  with probability 0.8 when the true effect is σ·(factor(n) + z₀.₈/√n) away from it
  (`analysis.stats.sequential.detectable_gap`, the same expression `n_for_power` solves for the "≈N more
  prompts"). The goal's boundary is zero, a guardrail's its margin, another metric's its practical margin;
- a fixed-horizon plan reads the two-sided 1 − α interval for the goal and the guardrails (a guardrail passes
  when the interval's worst end is inside its margin), and a one-sided t test at α for other metrics' harm.

So the MDE is a distance from the condition's boundary: for the goal the improvement needed, for a
guardrail how far inside its margin the true change must be, for another metric how far beyond its
practical margin a harm must go to be caught. Without a plan the fixed-horizon two-sided MDE is kept.
Holm's adjustment across several candidates (and across other metrics) is not included: with several
candidates the goal's MDE is somewhat larger than shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from analysis.analyze import Analysis, Comparison
from analysis.plan import DecisionPlan, PlanError, resolve_metric
from analysis.stats.distributions import t_quantile
from analysis.stats.results import MetricKind
from analysis.stats.sequential import detectable_gap

MDE_POWER = 0.8
MdeTest = Literal["always-valid", "fixed-horizon", "fixed-horizon (no plan)"]
Role = Literal["goal", "guardrail", "other"]


@dataclass(frozen=True)
class RuleMde:
    """The rule's MDE now and at the planned sample, on the estimate's scale (a ratio for latency)."""

    test: MdeTest
    now: float | None
    planned: float | None = None
    planned_n: int | None = None


def planned_n(plan: DecisionPlan) -> int:
    """Where the plan ends: its horizon N* (fixed) or its maximum sample (sequential)."""
    return plan.n_star if plan.design == "fixed" else plan.max_sample


def _gap(se: float, df: float, n: int, at_n: int, plan: DecisionPlan, alpha: float, role: Role) -> float:
    """The distance from the condition's boundary detected with MDE_POWER at `at_n` units."""
    sigma = se * math.sqrt(n)
    if plan.design == "sequential":
        return float(detectable_gap(sigma, at_n, n_star=plan.n_star, alpha=alpha, power=MDE_POWER))
    df_at = df * at_n / n  # the same design, more units
    level = 1.0 - (alpha if role == "other" else alpha / 2.0)
    return (t_quantile(level, df_at) + t_quantile(MDE_POWER, df_at)) * sigma / math.sqrt(at_n)


def _scale(gap: float | None, kind: str) -> float | None:
    if gap is None or not math.isfinite(gap):
        return None
    return math.exp(gap) if kind == "latency" else gap


def comparison_mde(
    comparison: Comparison, plan: DecisionPlan | None, *, alpha: float, role: Role = "goal"
) -> RuleMde:
    """The MDE of one comparison under the plan's rule (fixed-horizon two-sided without a plan)."""
    result = comparison.result
    test = result.primary
    if plan is None:
        return RuleMde("fixed-horizon (no plan)", result.mde)
    kind: MdeTest = "always-valid" if plan.design == "sequential" else "fixed-horizon"
    se, n = test.se, test.n
    if se is None or not math.isfinite(se) or se <= 0 or n < 2:
        return RuleMde(kind, None, None, planned_n(plan))
    df = test.df if test.df is not None and test.df > 0 else float(n - 1)
    end = planned_n(plan)
    now = _gap(se, df, n, n, plan, alpha, role)
    planned = _gap(se, df, n, end, plan, alpha, role)
    return RuleMde(kind, _scale(now, result.kind), _scale(planned, result.kind), end)


def column_roles(plan: DecisionPlan, kinds: Mapping[str, MetricKind]) -> dict[str, Role]:
    """Each analysed column's role in the plan: the goal, a guardrail, else another metric. A guardrail on a
    quantile (ttft_p95) judges the quantile, not the column's estimate whose MDE is shown: not counted."""
    named: list[tuple[str, Role]] = [(g.metric, "guardrail") for g in plan.guardrails]
    named.append((plan.primary_metric, "goal"))  # last: the goal's role wins
    out: dict[str, Role] = {}
    for name, role in named:
        try:
            ref = resolve_metric(name, kinds)
        except PlanError:
            continue
        if ref.quantile is None:
            out[ref.column] = role
    return out


def rule_mdes(analysis: Analysis, plan: DecisionPlan | None) -> list[RuleMde]:
    """The rule's MDE of every comparison, in the analysis' order."""
    kinds = {c.metric: c.result.kind for c in analysis.comparisons}
    named = {} if plan is None else column_roles(plan, kinds)
    return [
        comparison_mde(c, plan, alpha=analysis.alpha, role=named.get(c.metric, "other"))
        for c in analysis.comparisons
    ]


def mde_words(test: str | None, planned: int | None = None) -> str:
    """Which test the MDE is for and what it means per role, in the words a product manager reads; with
    `planned`, that the MDE at the planned sample assumes today's variance."""
    roles_said = (
        "Goal: the smallest true improvement the rule detects 80 % of the time. Guardrail: how far inside "
        "its allowed change the true change must be for the rule to show it within, 80 % of the time. "
        "Other metrics: how far beyond their practical margin a harm must go to be caught."
    )
    at = f" At planned n ({planned:,} prompts): with today's variance." if planned else ""
    if test == "always-valid":
        return (
            "MDE (80 % power) of the decision rule's own test, the sequential plan's always-valid "
            f"intervals (wider than a single look's, so the MDE is larger). {roles_said}{at}"
        )
    if test == "fixed-horizon":
        return (
            "MDE (80 % power) of the decision rule's own test, the fixed-horizon interval read once at the "
            f"planned sample. {roles_said}{at}"
        )
    return (
        "MDE (80 % power) of a single-look two-sided test, as there is no decision plan: the smallest true "
        "change detected 80 % of the time."
    )


__all__ = [
    "MDE_POWER",
    "MdeTest",
    "RuleMde",
    "comparison_mde",
    "mde_words",
    "planned_n",
    "column_roles",
    "rule_mdes",
]
