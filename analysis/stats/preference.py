"""Pairwise preference of candidate over control: win rate with ties as ½."""

from __future__ import annotations

import numpy as np

from analysis.stats.distributions import FloatArray, binomial_two_sided_p, clopper_pearson
from analysis.stats.paired import mean_inference
from analysis.stats.power import mde_from_se
from analysis.stats.results import DEFAULT_INFERENCE, Inference, MetricComparison, TestResult


def decisive_pairs_binomial(scores: FloatArray, *, alpha: float = 0.05) -> TestResult:
    """Exact binomial test of wins among decisive pairs (ties dropped) against ½, Clopper–Pearson CI."""
    wins = int(np.count_nonzero(scores > 0.5))
    decisive = wins + int(np.count_nonzero(scores < 0.5))
    test = "exact binomial on decisive pairs"
    if decisive == 0:
        return TestResult(test, 0, None, None, None, 1.0, null_value=0.5, notes=("no decisive pairs",))
    low, high = clopper_pearson(wins, decisive, alpha)
    return TestResult(
        test,
        decisive,
        wins / decisive,
        low,
        high,
        binomial_two_sided_p(wins, decisive),
        statistic=float(wins),
        null_value=0.5,
    )


def compare_preference(scores: FloatArray, inference: Inference = DEFAULT_INFERENCE) -> MetricComparison:
    """Mean preference for the candidate (1 win, ½ tie, 0 loss) with a one-sample t against ½."""
    primary = mean_inference(scores, inference, test="one-sample t vs 0.5", null=0.5)
    alpha = inference.alpha
    return MetricComparison(
        kind="preference",
        primary=primary,
        candidate_mean=primary.estimate,
        robustness=(decisive_pairs_binomial(scores, alpha=alpha),),
        mde=mde_from_se(primary.se, primary.df, alpha=alpha),
        clustered=inference.clusters is not None,
        cuped="CUPED" in primary.test,
    )
