"""Paired binary outcomes (error, pass, refusal): rate difference, exact McNemar, Newcombe's interval."""

from __future__ import annotations

import math

import numpy as np

from analysis.stats.distributions import (
    FloatArray,
    binomial_two_sided_p,
    chi2_sf,
    wilson_interval,
)
from analysis.stats.paired import mean_inference
from analysis.stats.power import mde_from_se
from analysis.stats.results import DEFAULT_INFERENCE, Inference, MetricComparison, TestResult


def newcombe_paired_interval(
    both: int, first_only: int, second_only: int, neither: int, *, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Difference p1 − p2 of two paired proportions and Newcombe's (1998) method-10 interval.

    p1 is the rate of the first variable, p2 of the second. Square-and-add of Wilson intervals with
    the correlation estimate φ corrected as in the paper (Stat Med 17:2635, method 10).
    """
    total = both + first_only + second_only + neither
    if total == 0:
        raise ValueError("newcombe_paired_interval needs at least one pair, found 0")
    first_rate = (both + first_only) / total
    second_rate = (both + second_only) / total
    estimate = first_rate - second_rate
    low1, high1 = wilson_interval(both + first_only, total, alpha)
    low2, high2 = wilson_interval(both + second_only, total, alpha)
    margins = (both + first_only, second_only + neither, both + second_only, first_only + neither)
    phi = 0.0
    if min(margins) > 0:
        cross = both * neither - first_only * second_only
        scale = math.sqrt(math.prod(float(m) for m in margins))
        if cross > total / 2:
            phi = (cross - total / 2) / scale
        elif cross < 0:
            phi = cross / scale
    dl1, du2 = first_rate - low1, high2 - second_rate
    dl2, du1 = second_rate - low2, high1 - first_rate
    low = estimate - math.sqrt(max(0.0, dl1**2 + du2**2 - 2 * phi * dl1 * du2))
    high = estimate + math.sqrt(max(0.0, dl2**2 + du1**2 - 2 * phi * dl2 * du1))
    return (estimate, low, high)


def exact_mcnemar_p(first_only: int, second_only: int) -> float:
    """Exact McNemar test: two-sided binomial test of the discordant pairs against ½."""
    return binomial_two_sided_p(first_only, first_only + second_only, 0.5)


def mcnemar_chi2(first_only: int, second_only: int, *, correction: bool = True) -> tuple[float, float]:
    """McNemar's χ² (1 df), with Edwards' continuity correction by default as R's `mcnemar.test`."""
    discordant = first_only + second_only
    if discordant == 0:
        return (0.0, 1.0)
    gap = abs(first_only - second_only) - (1.0 if correction else 0.0)
    statistic = max(gap, 0.0) ** 2 / discordant
    return (statistic, chi2_sf(statistic, 1))


def paired_binary(
    control: FloatArray, candidate: FloatArray, inference: Inference = DEFAULT_INFERENCE
) -> MetricComparison:
    """Rate difference candidate − control over complete pairs of 0/1 outcomes (no CUPED: a rate's
    covariate adjustment would leave the exact McNemar/Newcombe pair behind)."""
    alpha, clusters = inference.alpha, inference.clusters
    n = int(control.size)
    ctrl = control.astype(bool)
    cand = candidate.astype(bool)
    both = int(np.count_nonzero(ctrl & cand))
    candidate_only = int(np.count_nonzero(cand & ~ctrl))
    control_only = int(np.count_nonzero(ctrl & ~cand))
    neither = n - both - candidate_only - control_only
    differences = candidate - control
    by_t = mean_inference(differences, Inference(alpha, clusters), test="paired rate difference, t")
    counts = f"discordant pairs: candidate-only {candidate_only}, control-only {control_only}"
    chi2, chi2_p = mcnemar_chi2(candidate_only, control_only)
    robustness = [
        TestResult(
            "McNemar chi-squared, continuity-corrected", n, None, None, None, chi2_p, statistic=chi2, df=1.0
        )
    ]
    if n == 0:
        primary = TestResult(
            "exact McNemar; Newcombe interval", 0, None, None, None, None, notes=("no complete pairs",)
        )
    elif clusters is not None:
        primary = by_t
        exact = TestResult(
            "exact McNemar (ignores clustering)",
            n,
            None,
            None,
            None,
            exact_mcnemar_p(candidate_only, control_only),
            statistic=float(candidate_only),
        )
        robustness.insert(0, exact)
    else:
        estimate, low, high = newcombe_paired_interval(
            both, candidate_only, control_only, neither, alpha=alpha
        )
        primary = TestResult(
            "exact McNemar; Newcombe interval",
            n,
            estimate,
            low,
            high,
            exact_mcnemar_p(candidate_only, control_only),
            statistic=float(candidate_only),
            se=by_t.se,
            notes=(counts,),
        )
    return MetricComparison(
        kind="binary",
        primary=primary,
        control_mean=float(control.mean()) if n else None,
        candidate_mean=float(candidate.mean()) if n else None,
        robustness=tuple(robustness),
        mde=mde_from_se(by_t.se, by_t.df, alpha=alpha),
        clustered=clusters is not None,
    )
