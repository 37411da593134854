"""The `verdict` block of the analyze document: decision, reasons, always-valid intervals, ranking."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis.analyze import Analysis
from analysis.csv_input import ExperimentTable
from analysis.decision import Check, Verdict, decide
from analysis.plan import DecisionPlan
from analysis.render import analysis_json
from analysis.stats.ranking import PairwiseOutcomes, Ranking, bradley_terry
from analysis.stats.sequential import SequentialComparison, SequentialInterval


def _num(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _interval_json(interval: SequentialInterval) -> dict[str, Any]:
    return {
        "n": interval.n,
        "estimate": _num(interval.estimate),
        "ci_low": _num(interval.ci_low),
        "ci_high": _num(interval.ci_high),
        "p_value": _num(interval.p_value),
        "null_value": interval.null_value,
    }


def _sequential_json(metric: str, candidate: str, seq: SequentialComparison) -> dict[str, Any]:
    return {
        "metric": metric,
        "candidate": candidate,
        **_interval_json(seq.primary),
        "relative": None if seq.relative is None else _interval_json(seq.relative),
        "quantiles": [{"quantile": q, **_interval_json(i)} for q, i in seq.quantiles],
    }


def _check_json(check: Check) -> dict[str, Any]:
    return {
        "name": check.name,
        "status": check.status,
        "detail": check.detail,
        "estimate": _num(check.estimate),
        "ci_low": _num(check.ci_low),
        "ci_high": _num(check.ci_high),
        "p_value": _num(check.p_value),
    }


def _ranking_json(ranking: Ranking | None) -> dict[str, Any] | None:
    if ranking is None:
        return None
    return {
        "method": "Bradley-Terry (ties as half wins), stratified bootstrap CIs",
        "reference": ranking.reference,
        "n_comparisons": ranking.n_comparisons,
        "resamples": ranking.resamples,
        "arms": [
            {
                "arm": a.arm,
                "rank": a.rank,
                "log_strength": a.log_strength,
                "ci_low": _num(a.ci_low),
                "ci_high": _num(a.ci_high),
                "win_probability_vs_reference": a.win_probability_vs_reference,
                "comparisons": a.comparisons,
            }
            for a in ranking.arms
        ],
    }


def verdict_json(verdict: Verdict, plan: DecisionPlan, ranking: Ranking | None) -> dict[str, Any]:
    """The verdict object (DESIGN §7): what to do, why, and the evidence each reason rests on."""
    return {
        "verdict": verdict.verdict,
        "recommended": verdict.recommended,
        "reasons": list(verdict.reasons),
        "more_prompts": verdict.more_prompts,
        "design": verdict.design,
        "n": verdict.n,
        "plan": {
            "primary_metric": plan.primary_metric,
            "primary_direction": plan.primary_direction,
            "guardrails": [
                {"metric": g.metric, "margin": g.margin, "relative": g.relative, "direction": g.direction}
                for g in plan.guardrails
            ],
            "alpha": plan.alpha,
            "min_sample": plan.min_sample,
            "max_sample": plan.max_sample,
            "n_star": plan.n_star,
        },
        "candidates": [
            {
                "arm": c.arm,
                "status": c.status,
                "n": c.n,
                "more_prompts": c.more_prompts,
                "cost_per_request": _num(c.cost_per_request),
                "reasons": list(c.reasons),
                "checks": [_check_json(check) for check in c.checks],
            }
            for c in verdict.candidates
        ],
        "sequential": [_sequential_json(m, c, s) for m, c, s in verdict.sequential],
        "ranking": _ranking_json(ranking),
    }


def pairwise_from_table(table: ExperimentTable, control: str) -> PairwiseOutcomes:
    """Candidate-vs-control outcomes from the first preference column (the CSV has no other pairs)."""
    column = next((m for m in table.metrics if m.kind == "preference"), None)
    empty = np.zeros(0, dtype=np.int64)
    if column is None:
        return PairwiseOutcomes(None, empty, empty, np.zeros(0))
    ctrl = table.arms.index(control)
    rows, arms = np.nonzero(~np.isnan(column.values))
    keep = arms != ctrl
    rows, arms = rows[keep], arms[keep]
    scores = column.values[rows, arms]
    first = np.minimum(arms, ctrl).astype(np.int64)
    second = np.maximum(arms, ctrl).astype(np.int64)
    return PairwiseOutcomes(column.name, first, second, np.where(first == arms, scores, 1.0 - scores))


def rank_arms(arms: tuple[str, ...], control: str, pairwise: PairwiseOutcomes) -> Ranking | None:
    """Bradley–Terry ranking of every arm, or None without preferences."""
    if pairwise.first.size == 0:
        return None
    return bradley_terry(arms, pairwise.first, pairwise.second, pairwise.score, reference=control)


def analysis_document(
    analysis: Analysis, plan: DecisionPlan | None, pairwise: PairwiseOutcomes
) -> tuple[dict[str, Any], Verdict | None]:
    """The full JSON document; the verdict block is filled when a decision plan is given."""
    doc = analysis_json(analysis)
    if plan is None:
        return doc, None
    verdict = decide(analysis, plan)
    doc["verdict"] = verdict_json(verdict, plan, rank_arms(analysis.arms, analysis.control, pairwise))
    return doc, verdict
