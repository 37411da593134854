"""The analyze document (JSON): the analysis, the `verdict` block (decision, reasons, always-valid
intervals, the ranking computed by `analysis.ranking`), the `clustering` block and the `routing` block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analysis.analyze import Analysis, Comparison
from analysis.clustering import clustering_json, clustering_of
from analysis.csv_input import ExperimentTable
from analysis.decision import Check, Verdict, decide
from analysis.json_values import json_number as _num
from analysis.plan import DecisionPlan
from analysis.render import analysis_json
from analysis.routing import RoutingRecommendation
from analysis.rule_mde import rule_mdes
from analysis.stats.ranking import Ranking
from analysis.stats.sequential import SequentialComparison, SequentialInterval


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


def analysis_document(
    analysis: Analysis,
    plan: DecisionPlan | None,
    ranking: Ranking | None,
    table: ExperimentTable | None = None,
) -> tuple[dict[str, Any], Verdict | None]:
    """The full JSON document; the verdict block is filled when a decision plan is given, the `clustering`
    block (the unit of analysis, on the primary metric and first candidate) when the `table` has clusters.
    Each comparison's `mde` is the decision rule's (`analysis.rule_mde`; `mde_test` names the test)."""
    doc = analysis_json(analysis)
    others = [c.candidate for c in analysis.comparisons]
    others = others or [arm for arm in analysis.arms if arm != analysis.control]
    clustering = None
    if table is not None and others:
        clustering = clustering_of(table, control=analysis.control, candidate=others[0], plan=plan)
    doc["clustering"] = clustering_json(clustering)
    for row, mde in zip(doc["comparisons"], rule_mdes(analysis, plan), strict=True):
        # What the pages show: the MDE of the plan's own test (the stats' two-sided one without a plan).
        row.update(mde=_num(mde.now), mde_test=mde.test, mde_planned=_num(mde.planned),
                   mde_planned_n=mde.planned_n)  # fmt: skip
    if plan is None:
        return doc, None
    verdict = decide(analysis, plan)
    doc["verdict"] = verdict_json(verdict, plan, ranking)
    return doc, verdict


def _comparison_summary(comparison: Comparison | None) -> dict[str, Any] | None:
    if comparison is None:
        return None
    primary, relative = comparison.result.primary, comparison.result.relative
    return {
        "estimate": _num(primary.estimate),
        "ci_low": _num(primary.ci_low),
        "ci_high": _num(primary.ci_high),
        "p_value": _num(primary.p_value),
        "n": primary.n,
        "test": primary.test,
        "control_value": _num(comparison.result.control_mean),
        "routed_value": _num(comparison.result.candidate_mean),
        "relative": None
        if relative is None
        else {
            "estimate": _num(relative.estimate),
            "ci_low": _num(relative.ci_low),
            "ci_high": _num(relative.ci_high),
        },
    }


def routing_json(rec: RoutingRecommendation) -> dict[str, Any]:
    """The snapshot's `routing` block: the rule, each segment's arm and reason, the saving and its risk.

    `saving` is control − routed cost per request (positive = cheaper), with its interval; `cost_change`
    is routed − control as computed, with the relative change.
    """
    cost = _comparison_summary(rec.saving)
    saving = None
    if cost is not None and cost["estimate"] is not None:
        flip = {k: (None if cost[k] is None else -cost[k]) for k in ("estimate", "ci_high", "ci_low")}
        saving = {"per_request_usd": flip["estimate"], "ci_low": flip["ci_high"], "ci_high": flip["ci_low"],
                  "relative": cost["relative"], "n": cost["n"], "test": cost["test"]}  # fmt: skip
    return {
        "dimension": rec.dimension,
        "control": rec.control,
        "rule": {"min_n": rec.rule.min_n, "primary_margin": rec.rule.primary_margin},
        "segments": [
            {
                "segment": s.segment,
                "when": {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in s.predicate.items()},
                "n_requests": s.n_requests,
                "share": s.share,
                "arm": s.arm,
                "status": s.status,
                "reason": s.reason,
                "candidates": [
                    {
                        "arm": c.arm,
                        "qualifies": c.qualifies,
                        "cost_per_request": _num(c.cost_per_request),
                        "p_value": _num(c.p_value),
                        "p_adjusted": _num(c.p_adjusted),
                        "checks": [_check_json(k) for k in c.checks],
                    }
                    for c in s.candidates
                ],  # fmt: skip
            }
            for s in rec.segments
        ],
        "saving": None if saving is None else {**saving, "method": rec.saving_method},
        "cost_change": cost,
        "mix_checks": [_check_json(k) for k in rec.mix],
        "risk": list(rec.risk),
    }
