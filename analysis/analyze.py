"""Run every paired comparison and health check on a validated experiment table."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from analysis.csv_input import ERROR_COLUMN, ExperimentTable, FloatArray, MetricColumn
from analysis.plan import LOWER_IS_BETTER_WORDS
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
    judge_consistency_check,
    minimum_sample_check,
    paired_binary,
)
from analysis.stats.results import Inference, MetricKind


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
    failure_latency_ms: float | None = None,
) -> MetricComparison:
    """Pair the two arms on one metric (complete pairs only) and run the metric's tests.

    Failures count against the arm that failed: at the replay timeout in latency ratios, and at the
    worst value seen in score metrics ("including failures"); the survivors-only results stay as
    secondary lines.
    """
    ctrl = metric.values[:, table.arms.index(control)]
    cand = metric.values[:, table.arms.index(candidate)]

    def pairs(c: FloatArray, t: FloatArray) -> MetricComparison:
        return _compare_pairs(
            table, metric.kind, c, t, alpha=alpha, covariate_mean=covariate_mean,
            failure_latency_ms=failure_latency_ms,
        )  # fmt: skip

    survivors = pairs(ctrl, cand)
    worst = _worst_value(table, metric)
    if worst is None:
        return survivors
    failed = failed_replays(table)
    ctrl = np.where(np.isnan(ctrl) & failed[:, table.arms.index(control)], worst, ctrl)
    cand = np.where(np.isnan(cand) & failed[:, table.arms.index(candidate)], worst, cand)
    counted = pairs(ctrl, cand)
    n_failed = counted.primary.n - survivors.primary.n
    if n_failed <= 0:
        return survivors
    primary = replace(
        counted.primary,
        test=counted.primary.test + ", failures at the worst score",
        notes=(*counted.primary.notes, f"{n_failed} pairs with a failed answer scored {worst:g}"),
    )
    secondary = replace(survivors.primary, test=survivors.primary.test + ", survivors only (both answered)")
    return replace(counted, primary=primary, robustness=(*counted.robustness, secondary))


def _compare_pairs(
    table: ExperimentTable,
    kind: MetricKind,
    ctrl: FloatArray,
    cand: FloatArray,
    *,
    alpha: float,
    covariate_mean: float | None,
    failure_latency_ms: float | None,
) -> MetricComparison:
    # Preferences live on the candidate's row; the control's cell carries nothing.
    complete = ~np.isnan(cand) if kind == "preference" else ~np.isnan(ctrl) & ~np.isnan(cand)
    inference = Inference(alpha, table.clusters, table.covariate, covariate_mean).subset(complete)
    c, t = ctrl[complete], cand[complete]
    if kind == "binary":
        return paired_binary(c, t, inference)
    if kind == "latency":
        return compare_latency(c, t, inference, failure_value=failure_latency_ms)
    if kind == "cost":
        return compare_cost(c, t, inference)
    if kind == "preference":
        return compare_preference(t, inference)
    return compare_mean(c, t, inference)


def failed_replays(table: ExperimentTable) -> npt.NDArray[np.bool_]:
    """Where a replay failed (the error column is 1), per request and arm."""
    errors = [m for m in table.metrics if m.name == ERROR_COLUMN]
    return (
        np.zeros((len(table.request_ids), len(table.arms)), dtype=bool)
        if not errors
        else errors[0].values == 1
    )


def scores_answers(metric: MetricColumn) -> bool:
    """Whether a failed answer counts at the metric's worst value: score metrics, not the error rate."""
    return metric.kind in ("mean", "binary") and metric.name != ERROR_COLUMN


def worst_is_highest(metric: MetricColumn) -> bool:
    """Whether the metric's worst value is its highest (an error, refusal or failure rate), else lowest."""
    return any(word in metric.name.lower() for word in LOWER_IS_BETTER_WORDS)


def _worst_value(table: ExperimentTable, metric: MetricColumn) -> float | None:
    """The score a failed answer gets in a score metric: the worst value any arm got (the scale's minimum
    in practice: 1 on a 1-10 judge, 0 for a check); None for metrics that are not answer scores."""
    if not scores_answers(metric):
        return None
    if not failed_replays(table).any():
        return None
    present = metric.values[~np.isnan(metric.values)]
    if not present.size:
        return None
    return float(present.max() if worst_is_highest(metric) else present.min())


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
    failure_latency_ms: float | None = None,
    judge_orders: tuple[int, int] | None = None,
) -> Analysis:
    """Compare every candidate with the control on every metric; an A/A arm feeds the noise-floor check,
    and `judge_orders` (pairs whose verdict flipped with the order, pairs judged in both orders) the judge's
    consistency check."""
    candidates = [arm for arm in table.arms if arm not in (control, aa_arm)]
    results = [
        (
            metric.name,
            candidate,
            compare_arms(
                table,
                metric,
                control,
                candidate,
                alpha=alpha,
                covariate_mean=covariate_mean,
                failure_latency_ms=failure_latency_ms,
            ),  # fmt: skip
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
                table,
                m,
                control,
                aa_arm,
                alpha=alpha,
                covariate_mean=covariate_mean,
                failure_latency_ms=failure_latency_ms,
            ).primary.p_value  # fmt: skip
            for m in table.metrics
            if m.kind != "preference"
        }
    checks = (
        *completeness_checks(present, len(table.request_ids)),
        # It blocks a verdict (`invalid`), so like the A/A and completeness checks it needs strong evidence.
        error_imbalance_check(error_p, alpha=min(alpha, AA_THRESHOLD)),
        minimum_sample_check({f"{c.metric}:{c.candidate}": c.result.primary.n for c in comparisons}),
        aa_noise_floor_check(aa_p, alpha=min(alpha, AA_THRESHOLD)),
        *(() if judge_orders is None else (judge_consistency_check(*judge_orders),)),
    )
    return Analysis(
        len(table.request_ids), table.arms, control, alpha, adjust, comparisons, HealthReport(checks)
    )
