"""Every segment's comparison of one metric × candidate at once, from sufficient statistics.

What `analyze.compare_arms` computes on one segment's rows alone, for all segments of a dimension together:
per segment n, sums and centred sums of squares (and per-cluster sums for cluster-robust SEs) by `np.bincount`
on the segment codes (`analysis.stats.grouped`), then each segment's interval and p-value from those. The
rules are `compare_arms`'s, applied per segment: a failed answer scores the segment's worst value in a score
metric, a failed replay counts at the replay timeout in a latency ratio (as in the whole analysis; at the
segment's slowest latency only when no timeout is known, as `compare_arms` on the segment's rows would),
preferences live on the candidate's row; no CUPED (segments are never given the
covariate's population mean).

A segment row shows the primary result only (`segments.segment_json`) and routing reads the primary, the
relative cost change and the arms' means, so the row-level robustness tests of the whole-experiment analysis
(Wilcoxon–Pratt, McNemar's χ², the decisive-pairs binomial, survivors-only lines) are not computed per
segment. Latency quantile differences need sorted rows: only for the metrics asked for (routing's quantile
guardrails, such as ttft_p95), segment by segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property, reduce
from typing import Literal

import numpy as np

from analysis.analyze import failed_replays, scores_answers, worst_is_highest
from analysis.csv_input import ExperimentTable, FloatArray, IntArray, MetricColumn
from analysis.stats.binary import exact_mcnemar_p, newcombe_paired_interval
from analysis.stats.grouped import BoolArray, Grouping, Rows, group_extreme, group_means, grouped_mean
from analysis.stats.latency import ratio_from_log
from analysis.stats.paired import t_result
from analysis.stats.power import mde_from_se
from analysis.stats.quantiles import DEFAULT_QUANTILES, quantile_differences
from analysis.stats.results import MetricComparison, MetricKind, QuantileDifference, TestResult

WORST_SCORE = ", failures at the worst score"


@dataclass(frozen=True)
class ArmPair:
    """One metric's control and candidate columns, prepared once for every dimension: `unscored` marks
    failed answers without a score (control, candidate), which count at the segment's worst score, and
    `row_worst` is each request's worst score over every arm (None: nothing to fill)."""

    metric: MetricColumn
    ctrl: FloatArray
    cand: FloatArray
    survivors: BoolArray
    unscored: tuple[BoolArray, BoolArray] | None = None
    row_worst: FloatArray | None = None

    # What a latency comparison needs of every row whatever the segments, computed once for all dimensions
    # (a latency metric has no unscored answers: `ctrl` and `cand` are what every segment compares, and its
    # complete rows are `survivors`, where both arms have a value, +∞ for a failed replay).
    @cached_property
    def finite(self) -> tuple[BoolArray, BoolArray]:
        """Complete rows where the control's, and the candidate's, replay succeeded."""
        return self.survivors & np.isfinite(self.ctrl), self.survivors & np.isfinite(self.cand)

    @cached_property
    def slowest(self) -> FloatArray:
        """Each row's slowest successful latency (NaN: neither arm succeeded)."""
        ok_c, ok_t = self.finite
        slowest: FloatArray = np.fmax(np.where(ok_c, self.ctrl, np.nan), np.where(ok_t, self.cand, np.nan))
        return slowest

    @cached_property
    def logs(self) -> tuple[FloatArray, FloatArray]:
        """log of the control's and of the candidate's latency where it succeeded (0 elsewhere)."""
        ok_c, ok_t = self.finite
        return np.log(np.where(ok_c, self.ctrl, 1.0)), np.log(np.where(ok_t, self.cand, 1.0))


def arm_pair(table: ExperimentTable, metric: MetricColumn, control: str, candidate: str) -> ArmPair:
    """The columns of `control` and `candidate` on `metric`, with what failures change in them."""
    i, j = table.arms.index(control), table.arms.index(candidate)
    ctrl, cand = metric.values[:, i], metric.values[:, j]
    survivors = ~np.isnan(cand) if metric.kind == "preference" else ~np.isnan(ctrl) & ~np.isnan(cand)
    if not scores_answers(metric):
        return ArmPair(metric, ctrl, cand, survivors)
    failed = failed_replays(table)
    unscored = (np.isnan(ctrl) & failed[:, i], np.isnan(cand) & failed[:, j])
    if not (unscored[0].any() or unscored[1].any()):
        return ArmPair(metric, ctrl, cand, survivors)
    return ArmPair(metric, ctrl, cand, survivors, unscored, worst_of_row(metric))


def worst_of_row(metric: MetricColumn) -> FloatArray:
    """Each request's worst score over the arms (NaN: none scored): folded column by column, as a reduce
    along the rows of a narrow matrix costs ~14× more (10 ms at 200,000 × 5)."""
    worse = np.fmax if worst_is_highest(metric) else np.fmin
    columns = metric.values.T
    worst: FloatArray = reduce(worse, columns[1:], columns[0].copy())
    return worst


def segment_pairs(pair: ArmPair, grouping: Grouping) -> IntArray:
    """Complete pairs per segment (the candidate's answers for a preference), failures not counted."""
    return Rows.of(pair.survivors, grouping).n


def segment_comparisons(
    pair: ArmPair, grouping: Grouping, *, alpha: float, wanted: Sequence[int],
    quantile_clusters: IntArray | None | Literal[False] = False, failure_latency_ms: float | None = None,
) -> dict[int, MetricComparison]:  # fmt: skip
    """The comparison in each segment of `wanted`; latency quantiles unless `quantile_clusters` is False
    (else the table's cluster labels, or None); a failed replay at `failure_latency_ms` in latency ratios."""
    kind = pair.metric.kind
    if kind == "preference":
        return _preference(pair.cand, grouping, alpha, wanted)
    if kind == "latency":
        return _latency(pair, grouping, alpha, wanted, quantile_clusters, failure_latency_ms)
    ctrl, cand = _failures_at_worst(pair, grouping)
    complete = Rows.of(~np.isnan(ctrl) & ~np.isnan(cand), grouping)
    if kind == "binary":
        found = _binary(ctrl, cand, complete, grouping, alpha, wanted)
    else:
        found = _paired(kind, ctrl, cand, complete, grouping, alpha, wanted)
    if pair.unscored is None:
        return found
    # as compare_arms says it: where counting failed answers added pairs
    counted = complete.n > segment_pairs(pair, grouping)
    return {
        g: replace(c, primary=replace(c.primary, test=c.primary.test + WORST_SCORE)) if counted[g] else c
        for g, c in found.items()
    }


def _failures_at_worst(pair: ArmPair, grouping: Grouping) -> tuple[FloatArray, FloatArray]:
    """Control and candidate with each failed, unscored answer at its segment's worst score."""
    if pair.unscored is None or pair.row_worst is None:
        return pair.ctrl, pair.cand
    reduce = np.fmax if worst_is_highest(pair.metric) else np.fmin
    fill = group_extreme(reduce, pair.row_worst, grouping)[grouping.codes]
    (ctrl_failed, cand_failed) = pair.unscored
    return np.where(ctrl_failed, fill, pair.ctrl), np.where(cand_failed, fill, pair.cand)


def _paired(
    kind: MetricKind, ctrl: FloatArray, cand: FloatArray, complete: Rows, grouping: Grouping, alpha: float,
    wanted: Sequence[int],
) -> dict[int, MetricComparison]:  # fmt: skip
    """Mean and cost: paired t on candidate − control; cost adds the relative change (delta method)."""
    ctrl_mean, cand_mean = group_means(ctrl, complete, grouping), group_means(cand, complete, grouping)
    stats = grouped_mean(complete.only(cand) - complete.only(ctrl), complete, grouping, wanted=wanted)
    relative = (
        _relative_change(ctrl, cand, (ctrl_mean, cand_mean), complete, grouping, alpha, wanted)
        if kind == "cost"
        else {}
    )
    out = {}
    for g in wanted:
        primary = stats.t(g, "paired t", alpha=alpha, clustered=grouping.clustered)
        n = primary.n
        out[g] = MetricComparison(
            kind=kind,
            primary=primary,
            control_mean=float(ctrl_mean[g]) if n else None,
            candidate_mean=float(cand_mean[g]) if n else None,
            relative=relative.get(g),
            mde=mde_from_se(primary.se, primary.df, alpha=alpha),
            clustered=grouping.clustered,
        )
    return out


def _relative_change(
    ctrl: FloatArray, cand: FloatArray, means: tuple[FloatArray, FloatArray], complete: Rows,
    grouping: Grouping, alpha: float, wanted: Sequence[int],
) -> dict[int, TestResult]:  # fmt: skip
    """mean(candidate)/mean(control) − 1 per segment, SE from the influence values (cost.relative_change)."""
    test = "relative change, delta method"
    ctrl_mean, cand_mean = means
    positive = np.nan_to_num(ctrl_mean) > 0.0
    ratio = np.divide(cand_mean, ctrl_mean, out=np.ones(grouping.size), where=positive)
    scale = np.where(positive, ctrl_mean, 1.0)
    codes = grouping.codes
    rows = Rows.of(complete.mask & positive[codes], grouping)
    stats = grouped_mean((cand - ratio[codes] * ctrl) / scale[codes], rows, grouping, wanted=wanted)
    out = {}
    for g in wanted:
        n = int(complete.n[g])
        if n == 0:
            out[g] = TestResult(test, 0, None, None, None, None, notes=("no complete pairs",))
        elif not positive[g]:
            out[g] = TestResult(test, n, None, None, None, None, notes=("control mean is not positive",))
        else:
            out[g] = t_result(test, n, float(ratio[g]) - 1.0, stats.se[g], stats.df[g], alpha=alpha, null=0.0)
    return out


def _binary(
    ctrl: FloatArray, cand: FloatArray, complete: Rows, grouping: Grouping, alpha: float,
    wanted: Sequence[int],
) -> dict[int, MetricComparison]:  # fmt: skip
    """Rate difference: exact McNemar with Newcombe's interval, or the cluster-robust t with clusters."""
    by_t = grouped_mean(complete.only(cand) - complete.only(ctrl), complete, grouping, wanted=wanted)
    yes_c, yes_t = complete.only(ctrl) != 0, complete.only(cand) != 0
    both = Rows.of(yes_c & yes_t, grouping).n
    cand_only = Rows.of(yes_t & ~yes_c, grouping).n
    ctrl_only = Rows.of(yes_c & ~yes_t, grouping).n
    ctrl_mean, cand_mean = group_means(ctrl, complete, grouping), group_means(cand, complete, grouping)
    out = {}
    for g in wanted:
        n = int(by_t.n[g])
        t = by_t.t(g, "paired rate difference, t", alpha=alpha, clustered=grouping.clustered)
        if n == 0:
            primary = TestResult("exact McNemar; Newcombe interval", 0, None, None, None, None,
                                 notes=("no complete pairs",))  # fmt: skip
        elif grouping.clustered:
            primary = t
        else:
            k, j, b = int(cand_only[g]), int(ctrl_only[g]), int(both[g])
            estimate, low, high = newcombe_paired_interval(b, k, j, n - b - k - j, alpha=alpha)
            primary = TestResult(
                "exact McNemar; Newcombe interval", n, estimate, low, high, exact_mcnemar_p(k, j),
                statistic=float(k), se=t.se,
                notes=(f"discordant pairs: candidate-only {k}, control-only {j}",),
            )  # fmt: skip
        out[g] = MetricComparison(
            kind="binary",
            primary=primary,
            control_mean=float(ctrl_mean[g]) if n else None,
            candidate_mean=float(cand_mean[g]) if n else None,
            mde=mde_from_se(t.se, t.df, alpha=alpha),
            clustered=grouping.clustered,
        )
    return out


def _latency(
    pair: ArmPair, grouping: Grouping, alpha: float, wanted: Sequence[int],
    quantile_clusters: IntArray | None | Literal[False], failure_latency_ms: float | None,
) -> dict[int, MetricComparison]:  # fmt: skip
    """Ratio of geometric means; failed replays (+∞) at the replay timeout, or without one at the segment's
    slowest latency when it has any. The logs of the successful latencies are taken once for every dimension
    (`ArmPair.logs`); a segment's fill only adds the log of its own value."""
    ctrl, cand, codes = pair.ctrl, pair.cand, grouping.codes
    complete = Rows.of(pair.survivors, grouping)
    ok_c, ok_t = pair.finite
    n_failed = Rows.of(complete.mask & ~ok_c, grouping).n + Rows.of(complete.mask & ~ok_t, grouping).n
    fill = np.full(grouping.size, np.nan if failure_latency_ms is None else failure_latency_ms)
    if failure_latency_ms is None and n_failed.any():
        fill = group_extreme(np.fmax, pair.slowest, grouping)
    counts_failures = (n_failed > 0) & (np.nan_to_num(fill) > 0)
    rows = Rows.of((ok_c & ok_t) | (complete.mask & counts_failures[codes]), grouping)
    log_fill = np.log(np.where(counts_failures, fill, 1.0))[codes]
    log_ctrl, log_cand = pair.logs
    log_c = rows.only(np.where(ok_c, log_ctrl, log_fill))
    log_t = rows.only(np.where(ok_t, log_cand, log_fill))
    stats = grouped_mean(log_t - log_c, rows, grouping, wanted=wanted)
    ctrl_log_mean, cand_log_mean = group_means(log_c, rows, grouping), group_means(log_t, rows, grouping)
    out = {}
    for g in wanted:
        on_log = stats.t(g, "paired t on log ratios", alpha=alpha, clustered=grouping.clustered)
        primary = ratio_from_log(on_log)
        if counts_failures[g]:
            primary = replace(primary, test=primary.test + ", failures at the timeout")
        n = primary.n
        log_mde = mde_from_se(primary.se, primary.df, alpha=alpha)
        found: tuple[QuantileDifference, ...] = ()
        if quantile_clusters is not False:
            mine = complete.mask & (codes == g)
            found = quantile_differences(
                ctrl[mine], cand[mine], quantiles=DEFAULT_QUANTILES, alpha=alpha,
                clusters=None if quantile_clusters is None else quantile_clusters[mine],
            )  # fmt: skip
        out[g] = MetricComparison(
            kind="latency",
            primary=primary,
            control_mean=float(np.exp(ctrl_log_mean[g])) if n else None,
            candidate_mean=float(np.exp(cand_log_mean[g])) if n else None,
            quantiles=found,
            mde=None if log_mde is None else float(np.exp(log_mde)),
            clustered=grouping.clustered,
        )
    return out


def _preference(
    cand: FloatArray, grouping: Grouping, alpha: float, wanted: Sequence[int]
) -> dict[int, MetricComparison]:
    """Mean preference for the candidate (1 win, ½ tie, 0 loss) with a one-sample t against ½."""
    stats = grouped_mean(cand, Rows.of(~np.isnan(cand), grouping), grouping, wanted=wanted)
    out = {}
    for g in wanted:
        primary = stats.t(g, "one-sample t vs 0.5", alpha=alpha, null=0.5, clustered=grouping.clustered)
        out[g] = MetricComparison(
            kind="preference",
            primary=primary,
            candidate_mean=primary.estimate,
            mde=mde_from_se(primary.se, primary.df, alpha=alpha),
            clustered=grouping.clustered,
        )
    return out
