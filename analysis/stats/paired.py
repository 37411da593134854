"""Paired mean differences: t inference (iid, cluster-robust, CUPED) and the Wilcoxon–Pratt check."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from analysis.stats.clustering import cluster_variance
from analysis.stats.distributions import (
    FloatArray,
    normal_two_sided_p,
    t_quantile,
    t_two_sided_p,
)
from analysis.stats.power import mde_from_se
from analysis.stats.results import DEFAULT_INFERENCE, Inference, MetricComparison, MetricKind, TestResult

IntArray = npt.NDArray[np.int64]
Alternative = Literal["two-sided", "greater", "less"]

# Exact signed-rank p-values are computed up to this many pairs (R's wilcox.test uses 50 as well).
_EXACT_MAX_N = 50


def _standard_error(
    residuals: FloatArray, clusters: IntArray | None, n_params: int
) -> tuple[float | None, float | None, int]:
    """(SE, df, number of clustering dimensions used)."""
    n = residuals.size
    if n - n_params < 1:
        return (None, None, 0)
    if clusters is None:
        variance = float(np.dot(residuals, residuals)) / (n - n_params) / n
        return (math.sqrt(variance), float(n - n_params), 0)
    clustered = cluster_variance(residuals, clusters, n_params=n_params)
    if clustered is None:
        return (None, None, 0)
    return (math.sqrt(clustered.variance), clustered.df, sum(clustered.used))


def standard_error(
    residuals: FloatArray, *, clusters: IntArray | None, n_params: int
) -> tuple[float | None, float | None]:
    """SE of a mean from its residuals: iid, or cluster-robust: CR1 (Stata's small-sample factor) for 1-D
    `clusters`, two-way (Cameron, Gelbach & Miller 2011) for an (n × 2) array (`clustering.py`)."""
    se, df, _ = _standard_error(residuals, clusters, n_params)
    return (se, df)


def se_test_name(test: str, clustered: bool, ways: int) -> str:
    """The test's name with the kind of SE it used (`ways`: clustering dimensions that entered it)."""
    if not clustered:
        return test
    return test + (", two-way cluster-robust SE" if ways == 2 else ", cluster-robust SE")


def t_result(
    test: str, n: int, estimate: float, se: float | None, df: float | None, *, alpha: float, null: float
) -> TestResult:
    """Wrap an estimate and its SE into a t interval and two-sided p-value."""
    # Rounding leaves ~1e-16 of spread in constant data; treat that as no variance, not as infinite t.
    if se is None or df is None or not math.isfinite(se) or se <= 1e-12 * max(1.0, abs(estimate)):
        note = "too few pairs for a standard error" if se is None else "the differences have zero variance"
        return TestResult(test, n, estimate, None, None, None, null_value=null, se=se, notes=(note,))
    statistic = (estimate - null) / se
    half = t_quantile(1 - alpha / 2, df) * se
    return TestResult(
        test,
        n,
        estimate,
        estimate - half,
        estimate + half,
        t_two_sided_p(statistic, df),
        statistic=statistic,
        df=df,
        null_value=null,
        se=se,
    )


def mean_inference(
    values: FloatArray, inference: Inference = DEFAULT_INFERENCE, *, test: str, null: float = 0.0
) -> TestResult:
    """t inference for the mean of per-pair values, optionally cluster-robust and CUPED-adjusted.

    CUPED needs the covariate's population mean (e.g. prompt length over all captured traffic): the
    pairs already share every prompt-level covariate, so with only the sample's own mean the adjusted
    estimate and its honest variance equal the unadjusted ones. Without `covariate_mean` nothing changes.
    """
    alpha, clusters = inference.alpha, inference.clusters
    covariate, covariate_mean = inference.covariate, inference.covariate_mean
    n = int(values.size)
    if n == 0:
        return TestResult(test, 0, None, None, None, None, null_value=null, notes=("no complete pairs",))
    mean = float(values.mean())
    residuals = values - mean
    n_params = 1
    notes: tuple[str, ...] = ()
    if covariate is not None and covariate_mean is None:
        notes = ("CUPED skipped: no population mean of the covariate",)
    elif covariate is not None and covariate_mean is not None and n > 2:
        centred = covariate - covariate.mean()
        sxx = float(centred @ centred)
        if sxx > 0.0:
            theta = float(centred @ residuals) / sxx
            mean -= theta * (float(covariate.mean()) - covariate_mean)
            residuals = residuals - theta * centred
            n_params = 2
            test += ", CUPED"
    se, df, ways = _standard_error(residuals, clusters, n_params)
    result = t_result(se_test_name(test, clusters is not None, ways), n, mean, se, df, alpha=alpha, null=null)
    return replace(result, notes=(*result.notes, *notes)) if notes else result


def paired_mean_difference(
    control: FloatArray, candidate: FloatArray, inference: Inference = DEFAULT_INFERENCE
) -> TestResult:
    """Mean of candidate − control over complete pairs, with a paired t interval and p-value."""
    return mean_inference(candidate - control, inference, test="paired t")


def signed_rank_sum(differences: FloatArray) -> tuple[float, IntArray]:
    """W+ (the sum over positive differences of the mid-rank of |d|, 1-based, zeros ranked) and the size of
    each tie group of |d|, smallest value first.

    One sort of 64-bit keys: the bits of |d| (a non-negative float orders as its bit pattern) shifted left,
    the sign (d > 0) in the freed bit; ties of |d| stay adjacent and each group's positives are counted from
    the low bits. 2-3x faster than the argsort of mid-ranks it replaced, on continuous and tied data.
    Exact: ranks are halves of integers, so the sum is exact below 2^53 (n below ~9.5e7)."""
    if differences.size == 0:
        return 0.0, np.zeros(0, dtype=np.int64)
    magnitudes = np.abs(np.asarray(differences, dtype=np.float64))
    if np.isnan(magnitudes).any():
        raise ValueError("a NaN difference has no rank: pass complete pairs")
    positive = (differences > 0).astype(np.uint64)
    keys = np.sort((magnitudes.view(np.uint64) << np.uint64(1)) | positive)
    values = keys >> np.uint64(1)
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    counts = np.diff(np.append(starts, keys.size))
    positives = np.add.reduceat((keys & np.uint64(1)).astype(np.int64), starts)
    mid_ranks = np.cumsum(counts) - (counts - 1) / 2.0
    return float((mid_ranks * positives).sum()), counts


def _signed_rank_null(n: int) -> FloatArray:
    """Exact null distribution of W+ for n untied, non-zero differences."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for i in range(1, n + 1):
        counts[i:] = counts[i:] + counts[:-i].copy()
    result: FloatArray = counts / counts.sum()
    return result


def wilcoxon_pratt(
    differences: FloatArray,
    *,
    alternative: Alternative = "two-sided",
    correction: bool = False,
    method: Literal["auto", "exact", "asymptotic"] = "auto",
) -> TestResult:
    """Wilcoxon signed-rank test with Pratt's zeros: zeros are ranked, then their ranks are dropped.

    Exact ("auto") with at most 50 pairs and no zeros or ties; else the normal approximation with the
    tie correction (zeros excluded from it, as in `coin::wilcoxsign_test(zero.method = "Pratt")`).
    The statistic is W+ (R's V), the rank sum of positive differences.
    """
    n = int(differences.size)
    test = "Wilcoxon signed-rank (Pratt)"
    if n == 0:
        return TestResult(test, 0, None, None, None, None, notes=("no complete pairs",))
    w_plus, tie_counts = signed_rank_sum(differences)
    n_zero = int(np.count_nonzero(differences == 0))
    has_ties = bool((tie_counts[1:] > 1).any()) if n_zero else bool((tie_counts > 1).any())
    exact_possible = n_zero == 0 and not has_ties
    if method == "exact" and not exact_possible:
        raise ValueError("the exact signed-rank distribution needs differences without zeros or ties")
    if exact_possible and (method == "exact" or (method == "auto" and n <= _EXACT_MAX_N)):
        pmf = _signed_rank_null(n)
        w = int(round(w_plus))
        lower, upper = float(pmf[: w + 1].sum()), float(pmf[w:].sum())
        p = {"two-sided": min(1.0, 2 * min(lower, upper)), "greater": upper, "less": lower}[alternative]
        return TestResult(test + ", exact", n, None, None, None, p, statistic=w_plus)
    if n_zero == n:
        return TestResult(test, n, None, None, None, 1.0, statistic=0.0, notes=("all differences are zero",))
    mean = (n * (n + 1) - n_zero * (n_zero + 1)) / 4.0
    tie_groups = tie_counts[1:] if n_zero else tie_counts
    tie_term = float(((tie_groups**3) - tie_groups).sum()) / 2.0
    variance = (n * (n + 1) * (2 * n + 1) - n_zero * (n_zero + 1) * (2 * n_zero + 1) - tie_term) / 24.0
    shift = 0.0
    if correction:
        shift = {"two-sided": 0.5 * float(np.sign(w_plus - mean)), "greater": 0.5, "less": -0.5}[alternative]
    z = (w_plus - mean - shift) / math.sqrt(variance)
    if alternative == "two-sided":
        p = normal_two_sided_p(z)
    else:
        upper_tail = normal_two_sided_p(z) / 2 if z > 0 else 1 - normal_two_sided_p(z) / 2
        p = upper_tail if alternative == "greater" else 1 - upper_tail
    return TestResult(test + ", normal approximation", n, None, None, None, p, statistic=w_plus)


def paired_comparison(
    kind: MetricKind,
    control: FloatArray,
    candidate: FloatArray,
    inference: Inference = DEFAULT_INFERENCE,
    *,
    robustness: tuple[TestResult, ...] = (),
    relative: TestResult | None = None,
) -> MetricComparison:
    """A paired mean difference (t, clustered or CUPED when asked) as a comparison of `kind`."""
    primary = paired_mean_difference(control, candidate, inference)
    n = primary.n
    return MetricComparison(
        kind=kind,
        primary=primary,
        control_mean=float(control.mean()) if n else None,
        candidate_mean=float(candidate.mean()) if n else None,
        robustness=robustness,
        relative=relative,
        mde=mde_from_se(primary.se, primary.df, alpha=inference.alpha),
        clustered=inference.clusters is not None,
        cuped="CUPED" in primary.test,
    )


def compare_mean(
    control: FloatArray, candidate: FloatArray, inference: Inference = DEFAULT_INFERENCE
) -> MetricComparison:
    """Numeric quality: paired t on the mean difference, Wilcoxon–Pratt as a robustness check."""
    return paired_comparison(
        "mean", control, candidate, inference, robustness=(wilcoxon_pratt(candidate - control),)
    )
