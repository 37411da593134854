"""Run every paired comparison and health check on a validated experiment table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.csv_input import ERROR_COLUMN, ExperimentTable, MetricColumn
from analysis.stats import (
    AA_THRESHOLD,
    Adjustment,
    HealthReport,
    MetricComparison,
    aa_noise_floor_check,
    adjust_p_values,
    compare_cost,
    compare_latency,
    compare_mean,
    compare_preference,
    completeness_checks,
    error_imbalance_check,
    minimum_sample_check,
    paired_binary,
)


@dataclass(frozen=True)
class Comparison:
    """One metric, one candidate against the control, with its multiplicity-adjusted p-value."""

    metric: str
    control: str
    candidate: str
    result: MetricComparison
    p_adjusted: float | None


@dataclass(frozen=True)
class Analysis:
    """The whole run: comparisons across metrics × candidates, and the health report."""

    n_requests: int
    arms: tuple[str, ...]
    control: str
    alpha: float
    adjust: Adjustment
    comparisons: tuple[Comparison, ...]
    health: HealthReport


def compare_arms(
    table: ExperimentTable,
    metric: MetricColumn,
    control: str,
    candidate: str,
    *,
    alpha: float,
    covariate_mean: float | None = None,
) -> MetricComparison:
    """Pair the two arms on one metric (complete pairs only) and run the metric's tests."""
    ctrl = metric.values[:, table.arms.index(control)]
    cand = metric.values[:, table.arms.index(candidate)]
    # Preferences live on the candidate's row; the control's cell carries nothing.
    complete = ~np.isnan(cand) if metric.kind == "preference" else ~np.isnan(ctrl) & ~np.isnan(cand)
    clusters = None if table.clusters is None else table.clusters[complete]
    covariate = None if table.covariate is None else table.covariate[complete]
    c, t = ctrl[complete], cand[complete]
    if metric.kind == "binary":
        return paired_binary(c, t, alpha=alpha, clusters=clusters)
    if metric.kind == "latency":
        return compare_latency(
            c, t, alpha=alpha, clusters=clusters, covariate=covariate, covariate_mean=covariate_mean
        )
    if metric.kind == "cost":
        return compare_cost(
            c, t, alpha=alpha, clusters=clusters, covariate=covariate, covariate_mean=covariate_mean
        )
    if metric.kind == "preference":
        return compare_preference(
            t, alpha=alpha, clusters=clusters, covariate=covariate, covariate_mean=covariate_mean
        )
    return compare_mean(
        c, t, alpha=alpha, clusters=clusters, covariate=covariate, covariate_mean=covariate_mean
    )


def _error_p(result: MetricComparison) -> float | None:
    exact = [r for r in result.robustness if r.test.startswith("exact McNemar")]
    return exact[0].p_value if exact else result.primary.p_value


def analyze_table(
    table: ExperimentTable,
    *,
    control: str,
    alpha: float,
    adjust: Adjustment,
    aa_arm: str | None = None,
    covariate_mean: float | None = None,
) -> Analysis:
    """Compare every candidate with the control on every metric; an A/A arm feeds the noise-floor check."""
    candidates = [arm for arm in table.arms if arm not in (control, aa_arm)]
    results = [
        (
            metric.name,
            candidate,
            compare_arms(table, metric, control, candidate, alpha=alpha, covariate_mean=covariate_mean),
        )
        for metric in table.metrics
        for candidate in candidates
    ]
    adjusted = adjust_p_values([r.primary.p_value for _, _, r in results], adjust)
    comparisons = tuple(
        Comparison(name, control, candidate, result, p)
        for (name, candidate, result), p in zip(results, adjusted, strict=True)
    )
    present = {
        metric.name: {
            arm: int(np.count_nonzero(~np.isnan(metric.values[:, i])))
            for i, arm in enumerate(table.arms)
            # Preferences are judged candidate vs control; the A/A arm is not in that design.
            if not (metric.kind == "preference" and arm in (control, aa_arm))
        }
        for metric in table.metrics
    }
    error_p = {
        c.candidate: _error_p(c.result)
        for c in comparisons
        if c.metric == ERROR_COLUMN and c.result.kind == "binary"
    }
    aa_p = None
    if aa_arm is not None and aa_arm in table.arms:
        aa_p = {
            m.name: compare_arms(
                table, m, control, aa_arm, alpha=alpha, covariate_mean=covariate_mean
            ).primary.p_value
            for m in table.metrics
            if m.kind != "preference"
        }
    checks = (
        *completeness_checks(present, len(table.request_ids)),
        # It blocks a verdict (`invalid`), so like the A/A and completeness checks it needs strong evidence.
        error_imbalance_check(error_p, alpha=min(alpha, AA_THRESHOLD)),
        minimum_sample_check({f"{c.metric}:{c.candidate}": c.result.primary.n for c in comparisons}),
        aa_noise_floor_check(aa_p, alpha=min(alpha, AA_THRESHOLD)),
    )
    return Analysis(
        len(table.request_ids), table.arms, control, alpha, adjust, comparisons, HealthReport(checks)
    )
