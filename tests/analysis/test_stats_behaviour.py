"""Behaviour of the estimators beyond the published reference values."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from analysis.analyze import compare_arms
from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.stats import adjust_p_values, compare_latency, mean_inference, quantile_differences
from analysis.stats.health import missingness_chi2
from analysis.stats.results import Inference


def test_cluster_robust_se_matches_statsmodels_cr1() -> None:
    rng = np.random.default_rng(11)
    clusters = np.repeat(np.arange(40), 5)
    d = 0.2 + rng.normal(0, 1, 40)[clusters] + rng.normal(0, 1, 200)
    ours = mean_inference(d, Inference(clusters=clusters), test="paired t")
    fit = sm.OLS(d, np.ones(200)).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    assert ours.se is not None and abs(ours.se - float(fit.bse[0])) < 1e-12
    assert ours.df == 39


def test_cuped_needs_the_population_mean_and_then_narrows_the_interval() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(0, 1, 300)
    d = 0.1 + 0.8 * x + rng.normal(0, 0.5, 300)
    plain = mean_inference(d, test="paired t")
    skipped = mean_inference(d, Inference(covariate=x), test="paired t")
    adjusted = mean_inference(d, Inference(covariate=x, covariate_mean=0.0), test="paired t")
    assert (skipped.estimate, skipped.se) == (plain.estimate, plain.se)
    assert skipped.notes == ("CUPED skipped: no population mean of the covariate",)
    assert adjusted.se is not None and plain.se is not None and adjusted.se < 0.7 * plain.se
    assert adjusted.test == "paired t, CUPED"


def test_quantiles_are_reported_only_when_n_and_failures_allow() -> None:
    rng = np.random.default_rng(13)
    control = np.exp(rng.normal(6, 0.5, 500))
    candidate = np.exp(rng.normal(6, 0.5, 500))
    candidate[:40] = np.inf  # 8 % failures: p95 of the candidate is infinite
    p50, p95, p99 = quantile_differences(control, candidate)
    assert p50.supported and p50.method == "asymptotic"
    assert p50.ci_low is not None and p50.ci_high is not None and p50.ci_low < p50.estimate < p50.ci_high  # type: ignore[operator]
    assert not p95.supported and p95.reason == "over 5% of candidate requests failed, so its p95 is infinite"
    assert not p99.supported and p99.reason == "p99 needs at least 1000 pairs, found 500"


def test_bootstrap_on_request_agrees_with_the_asymptotic_interval() -> None:
    rng = np.random.default_rng(14)
    control = np.exp(rng.normal(6, 0.5, 800))
    candidate = control * np.exp(rng.normal(-0.1, 0.3, 800))
    (asym,) = quantile_differences(control, candidate, quantiles=(0.5,))
    (boot,) = quantile_differences(control, candidate, quantiles=(0.5,), method="bootstrap", seed=1)
    assert boot.method == "bootstrap" and boot.estimate == asym.estimate
    assert boot.ci_low is not None and asym.ci_low is not None and boot.ci_high is not None
    assert asym.ci_high is not None
    width = asym.ci_high - asym.ci_low
    assert abs(boot.ci_low - asym.ci_low) < 0.3 * width and abs(boot.ci_high - asym.ci_high) < 0.3 * width


def test_latency_ratio_counts_failures_at_the_timeout_and_keeps_the_survivors_line() -> None:
    control = np.array([100.0, 200.0, np.inf, 400.0, 100.0])
    candidate = np.array([50.0, 100.0, 300.0, np.inf, 50.0])
    result = compare_latency(control, candidate, quantiles=(), failure_value=1000.0)
    # Pairs: 0.5, 0.5, 300/1000, 1000/400, 0.5 → geometric mean of the five ratios.
    expected = float(np.exp(np.mean(np.log([0.5, 0.5, 0.3, 2.5, 0.5]))))
    assert result.primary.n == 5 and result.primary.estimate == pytest.approx(expected)
    assert result.primary.notes == ("2 failed replays counted at 1000 ms (the replay timeout)",)
    (survivors,) = result.robustness
    assert survivors.n == 3 and survivors.estimate == pytest.approx(0.5)
    # Every surviving pair halves its latency: zero variance, so no interval rather than an infinite t.
    assert survivors.p_value is None and survivors.notes == ("the differences have zero variance",)


def test_adjustment_skips_missing_p_values() -> None:
    assert adjust_p_values([0.01, None, 0.04], "holm") == [0.02, None, 0.04]
    assert adjust_p_values([0.01, None, 0.04], "none") == [0.01, None, 0.04]


def test_missingness_chi2_flags_unequal_missingness_only() -> None:
    _, equal = missingness_chi2({"a": 950, "b": 950}, 1000)
    _, unequal = missingness_chi2({"a": 1000, "b": 950}, 1000)
    assert equal == 1.0 and unequal < 1e-6


def test_the_aa_noise_floor_fails_on_strong_evidence_only() -> None:
    from analysis.stats import aa_noise_floor_check

    # Holm over two metrics doubles the smallest p-value: 0.0004 → 0.0008 fails, 0.01 → 0.02 passes.
    assert aa_noise_floor_check({"quality": 0.0004, "cost": 0.5}).passed is False
    assert aa_noise_floor_check({"quality": 0.01, "cost": 0.5}).passed is True
    assert aa_noise_floor_check({"quality": 0.01, "cost": 0.5}, alpha=0.05).passed is False
    assert aa_noise_floor_check(None).passed is None


@pytest.mark.parametrize("timeout_ms", [60_000.0, None])
def test_a_candidate_that_fails_on_its_slow_requests_looks_at_least_as_slow_as_it_is(
    timeout_ms: float | None,
) -> None:
    """Truly 5 % slower, its slowest 10 % fail: survivors alone said 1.02; with failures counted at the
    timeout (or, without one, at the slowest latency seen) the ratio is at least the true 1.05."""
    rng = np.random.default_rng(21)
    control = np.exp(rng.normal(7, 0.5, 4000))
    candidate = control * 1.05 * np.exp(rng.normal(0, 0.3, 4000))
    candidate[candidate >= np.quantile(candidate, 0.90)] = np.inf
    result = compare_latency(control, candidate, failure_value=timeout_ms)
    assert result.primary.estimate is not None and result.primary.estimate >= 1.05
    assert result.primary.ci_low is not None and result.primary.ci_low > 1.0
    (survivors,) = [r for r in result.robustness if "survivors only" in r.test]
    assert survivors.estimate is not None and survivors.estimate < 1.03  # what leaving them out reported
    assert any("400 failed replays counted at" in note for note in result.primary.notes)


def test_a_failed_answer_counts_at_the_worst_score_in_quality() -> None:
    """Same answers where both succeed, but the candidate fails on 20 % of prompts: including failures,
    its quality is lower; the survivors-only comparison (no difference) stays as a secondary line."""
    rng = np.random.default_rng(22)
    n = 1000
    quality = np.clip(np.round(rng.normal(7, 1.5, n)), 1, 10)
    candidate = quality.copy()
    errors = np.zeros((n, 2))
    errors[:200, 1] = 1.0
    candidate[:200] = np.nan  # a failed replay has no score
    table = ExperimentTable(
        tuple(f"r{i}" for i in range(n)),
        ("control", "cand"),
        (
            MetricColumn("error", "binary", errors),
            MetricColumn("quality", "mean", np.column_stack([quality, candidate])),
        ),
        None,
        None,
    )
    result = compare_arms(table, table.metrics[1], "control", "cand", alpha=0.05)
    assert result.primary.n == n and result.primary.estimate is not None
    worst = float(np.nanmin(quality))
    assert result.primary.estimate == pytest.approx(float(np.mean(worst - quality[:200])) * 0.2)
    assert result.primary.ci_high is not None and result.primary.ci_high < 0
    (survivors,) = [r for r in result.robustness if "survivors only" in r.test]
    assert survivors.n == 800 and survivors.estimate == 0.0


@pytest.mark.parametrize("shape", ["continuous", "tied", "zeros and signed zeros", "all zero", "infinite"])
def test_signed_rank_sum_matches_scipy_mid_ranks(shape: str) -> None:
    from scipy.stats import rankdata

    from analysis.stats.paired import signed_rank_sum

    rng = np.random.default_rng(7)
    d = {
        "continuous": rng.normal(0.1, 1, 5_000),
        "tied": rng.integers(-4, 5, 5_000).astype(float) / 2,
        "zeros and signed zeros": np.concatenate((rng.normal(size=50), [0.0, -0.0, 0.0, 1.5, -1.5])),
        "all zero": np.zeros(40),
        "infinite": np.array([np.inf, -np.inf, 2.0, -2.0, 0.5]),
    }[shape]
    ranks = rankdata(np.abs(d), method="average")  # the definition: mid-ranks of |d|, zeros ranked (Pratt)
    _, groups = np.unique(np.abs(d), return_counts=True)
    w_plus, ties = signed_rank_sum(d)
    assert w_plus == ranks[d > 0].sum()
    assert ties.tolist() == groups.tolist()


def test_signed_rank_sum_refuses_a_nan_difference() -> None:
    from analysis.stats.paired import signed_rank_sum

    with pytest.raises(ValueError, match="NaN"):
        signed_rank_sum(np.array([1.0, np.nan]))
