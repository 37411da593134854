"""Always-valid confidence sequences: GrowthBook's worked example, coverage and the peeking simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.stats import compare_latency, compare_mean
from analysis.stats.peeking import binary_aa, normal_aa, peeking, skewed_effect
from analysis.stats.sequential import (
    always_valid_p,
    half_width,
    mixture_rho_squared,
    n_for_half_width,
    sequential_comparison,
    sequential_interval,
)


def test_boundary_reproduces_growthbooks_worked_example() -> None:
    """GrowthBook gbstats, packages/stats/tests/frequentist/test_tests.py, TestSequentialTTest.
    test_sequential_test_runs: SampleMeanStatistic(sum=1396.87, sum_squares=52377.9767, n=3000) vs
    (sum=2422.7, sum_squares=134698.29, n=3461), sequential_tuning_parameter=1000, α = 0.05 →
    relative lift 0.50336, uplift stddev 0.33341, ci (-0.55844, 1.56516). Their interval is for an
    unpaired relative lift with N = n_a + n_b; the boundary function is the one our paired sequences use."""
    n_a, n_b = 3000, 3461
    mean_a, mean_b = 1396.87 / n_a, 2422.7 / n_b
    var_a = (52377.9767 - n_a * mean_a**2) / (n_a - 1)
    var_b = (134698.29 - n_b * mean_b**2) / (n_b - 1)
    lift = mean_b / mean_a - 1
    se = math.sqrt(var_b / (n_b * mean_a**2) + mean_b**2 * var_a / (n_a * mean_a**4))
    assert (round(lift, 5), round(se, 5)) == (0.50336, 0.33341)
    interval = sequential_interval(lift, se, n_a + n_b, n_star=1000, alpha=0.05)
    assert interval.ci_low is not None and interval.ci_high is not None
    assert (round(interval.ci_low, 5), round(interval.ci_high, 5)) == (-0.55844, 1.56516)
    assert interval.p_value == 1.0  # gbstats reports pValue=1 for this case too


def test_p_value_below_alpha_exactly_when_the_sequence_excludes_the_null() -> None:
    se, n = 0.05, 800
    width = float(half_width(se, n, n_star=2000, alpha=0.05))
    inside = float(always_valid_p((width * 0.999) / se, n, n_star=2000, alpha=0.05))
    outside = float(always_valid_p((width * 1.001) / se, n, n_star=2000, alpha=0.05))
    assert inside > 0.05 > outside
    assert mixture_rho_squared(0.05, 1000) == pytest.approx(
        (-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / 1000
    )


def test_sequence_is_wider_than_the_fixed_interval_and_tightest_near_n_star() -> None:
    se, n = 0.02, 1000
    assert float(half_width(se, n, n_star=1000, alpha=0.05)) > 1.96 * se
    near = float(half_width(se, n, n_star=1000, alpha=0.05))
    assert near < float(half_width(se, n, n_star=10, alpha=0.05))
    assert near < float(half_width(se, n, n_star=100_000, alpha=0.05))


def test_n_for_half_width_inverts_the_boundary() -> None:
    n = n_for_half_width(1.5, 0.1, n_star=5000, alpha=0.05)
    assert n is not None
    assert float(half_width(1.5 / math.sqrt(n), n, n_star=5000, alpha=0.05)) <= 0.1
    assert float(half_width(1.5 / math.sqrt(n - 1), n - 1, n_star=5000, alpha=0.05)) > 0.1
    assert n_for_half_width(1.0, 0.0, n_star=5000, alpha=0.05) is None


def test_every_kind_gets_a_sequence_on_its_own_scale() -> None:
    rng = np.random.default_rng(0)
    control = np.exp(rng.normal(6, 0.3, 400))
    candidate = control * np.exp(rng.normal(-0.1, 0.2, 400))
    latency = sequential_comparison(compare_latency(control, candidate), n_star=1000, alpha=0.05)
    fixed = compare_latency(control, candidate).primary
    assert latency.primary.log_scale and latency.primary.null_value == 1.0
    assert latency.primary.ci_low is not None and latency.primary.ci_high is not None
    assert fixed.ci_low is not None and fixed.ci_high is not None
    assert latency.primary.ci_low < fixed.ci_low < 1.0 and fixed.ci_high < latency.primary.ci_high < 1.0
    p95 = dict(latency.quantiles)[0.95]
    assert p95.ci_low is not None and p95.ci_high is not None and p95.estimate is not None
    assert p95.ci_low < p95.estimate < p95.ci_high
    scores = sequential_comparison(
        compare_mean(rng.normal(6, 1, 50), rng.normal(6, 1, 50)), n_star=500, alpha=0.05
    )
    assert scores.primary.p_value is not None and scores.relative is None


def test_peeking_naive_rule_inflates_errors_sequential_rule_holds() -> None:
    """1,000 A/A experiments, a look every 100 prompts up to 5,000 (the issue's setting)."""
    result = peeking(normal_aa, 0.0, sims=1000, every=100, max_n=5000, seed=11)
    print(f"naive {result.naive_rate:.3f} sequential {result.sequential_rate:.3f}")
    assert result.naive_rate > 0.15  # ≈ 0.3 at 10,000 runs (bench/bench_peeking.py)
    assert result.sequential_rate <= 0.05


def test_paired_sequences_cover_simultaneously_on_skewed_data() -> None:
    result = peeking(skewed_effect, 0.1, sims=1000, every=50, max_n=2000, seed=5)
    assert result.coverage >= 0.95
    binary = peeking(binary_aa, 0.0, sims=1000, every=100, max_n=3000, seed=6)
    assert binary.coverage >= 0.95


def test_n_for_power_clears_the_boundary_with_that_chance() -> None:
    """At n_for_power, an effect of exactly `gap` is outside the confidence sequence ≈80 % of the time
    (simulated); at power ½ it is n_for_half_width, which settles only half the time."""
    from analysis.stats.sequential import half_width, n_for_half_width, n_for_power

    sigma, gap, n_star, alpha = 2.0, 0.25, 5000, 0.05
    n80 = n_for_power(sigma, gap, n_star=n_star, alpha=alpha, power=0.8)
    n50 = n_for_power(sigma, gap, n_star=n_star, alpha=alpha, power=0.5)
    assert n80 is not None and n50 is not None and n80 > n50
    assert abs(n50 - (n_for_half_width(sigma, gap, n_star=n_star, alpha=alpha) or 0)) <= 1
    rng = np.random.default_rng(5)
    estimates = rng.normal(gap, sigma / np.sqrt(n80), 20_000)
    width = float(half_width(sigma / np.sqrt(n80), n80, n_star=n_star, alpha=alpha))
    cleared = float(np.mean(estimates - width > 0))
    assert 0.78 < cleared < 0.82
