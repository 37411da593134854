"""Always-valid confidence sequences: the normal-mixture SPRT (GrowthBook / Optimizely formulation).

For an asymptotically normal estimate θ̂ₙ with per-unit variance σ² (SE = σ/√n), mixing the likelihood
ratio over a N(0, ρ²σ²) prior on the effect gives (Waudby-Smith et al. 2023, arXiv:2103.06476v7, eq. 9)

    θ̂ₙ ± σ·√( 2(nρ² + 1) / (n²ρ²) · log(√(nρ² + 1) / α) ),

which holds at every n simultaneously with probability ≥ 1 − α, so it may be looked at after every
prompt. ρ is tuned so the sequence is tightest near the planned sample size N* (their eq. 161):
ρ² = (−2 log α + log(−2 log α + 1)) / N*. The always-valid p-value is 1/Λₙ, where Λₙ is the mixture
likelihood ratio; it is below α exactly when the sequence excludes the null.

Every metric kind uses the same boundary through its SE and n: the paired mean, rate and preference
differences, the log ratio of latencies, the delta-method relative cost change and the quantile
differences (whose SEs come from influence values) are all means of per-pair values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.stats.distributions import FloatArray, normal_quantile, t_quantile
from analysis.stats.results import MetricComparison, QuantileDifference, TestResult

ArrayLike = float | FloatArray | npt.NDArray[np.int64]


class SequentialInputError(ValueError):
    """A confidence-sequence parameter is out of range."""


def mixture_rho_squared(alpha: float, n_star: float) -> float:
    """ρ² of the normal mixture, tuned for the planned sample size N*."""
    if not 0.0 < alpha < 1.0:
        raise SequentialInputError(f"alpha: expected a number between 0 and 1, found {alpha}")
    if not n_star > 0:
        raise SequentialInputError(f"n_star: expected a positive planned sample size, found {n_star}")
    log_alpha = math.log(alpha)
    return (-2.0 * log_alpha + math.log(-2.0 * log_alpha + 1.0)) / n_star


def boundary_factor(n: ArrayLike, *, n_star: float, alpha: float) -> FloatArray:
    """√(2(nρ²+1)/(n²ρ²)·log(√(nρ²+1)/α)): the half-width per unit of σ (vectorised over n)."""
    rho2 = mixture_rho_squared(alpha, n_star)
    size = np.asarray(n, dtype=np.float64)
    grown = size * rho2 + 1.0
    factor: FloatArray = np.sqrt(2.0 * grown / (size * size * rho2) * np.log(np.sqrt(grown) / alpha))
    return factor


def half_width(se: ArrayLike, n: ArrayLike, *, n_star: float, alpha: float) -> FloatArray:
    """Half-width of the confidence sequence for an estimate with standard error `se` at n units."""
    sigma = np.asarray(se, dtype=np.float64) * np.sqrt(np.asarray(n, dtype=np.float64))
    result: FloatArray = sigma * boundary_factor(n, n_star=n_star, alpha=alpha)
    return result


def always_valid_p(z: ArrayLike, n: ArrayLike, *, n_star: float, alpha: float) -> FloatArray:
    """1/Λₙ for the z statistic (θ̂ₙ − null)/SE at n units, capped at 1 (vectorised)."""
    rho2 = mixture_rho_squared(alpha, n_star)
    size = np.asarray(n, dtype=np.float64)
    stat = np.asarray(z, dtype=np.float64)
    grown = size * rho2 + 1.0
    log_p = 0.5 * np.log(grown) - size * rho2 * stat * stat / (2.0 * grown)
    result: FloatArray = np.exp(np.minimum(log_p, 0.0))
    return result


def n_for_half_width(sigma: float, target: float, *, n_star: float, alpha: float) -> int | None:
    """Smallest n whose half-width σ·factor(n) is at most `target`; None when it cannot be reached."""
    if not (sigma > 0 and target > 0 and math.isfinite(sigma) and math.isfinite(target)):
        return None
    low, high = 1.0, 1.0
    while float(boundary_factor(high, n_star=n_star, alpha=alpha)) * sigma > target:
        high *= 2.0
        if high > 1e12:
            return None
    while high - low > 0.5:
        middle = (low + high) / 2.0
        if float(boundary_factor(middle, n_star=n_star, alpha=alpha)) * sigma > target:
            low = middle
        else:
            high = middle
    return math.ceil(high)


def detectable_gap(
    sigma: ArrayLike, n: ArrayLike, *, n_star: float, alpha: float, power: float = 0.8
) -> FloatArray:
    """σ·(factor(n) + z_power/√n): the smallest distance from a boundary that the confidence sequence at n
    units clears with probability `power` (the always-valid MDE; `n_for_power` solves it for n)."""
    size = np.asarray(n, dtype=np.float64)
    spread = np.asarray(sigma, dtype=np.float64)
    result: FloatArray = spread * (
        boundary_factor(size, n_star=n_star, alpha=alpha) + normal_quantile(power) / np.sqrt(size)
    )
    return result


def n_for_power(sigma: float, gap: float, *, n_star: float, alpha: float, power: float = 0.8) -> int | None:
    """Smallest n at which the confidence sequence clears a boundary `gap` away with probability `power`.

    If the effect really is `gap` from the boundary, the estimate at n is Normal(gap, σ²/n) around it,
    and the sequence excludes the boundary when the estimate is more than its half-width σ·factor(n) away:
    P = Φ((gap − σ·factor(n))·√n/σ) ≥ power ⇔ σ·(factor(n) + z_power/√n) ≤ gap. At `power` = ½ this is
    `n_for_half_width`, which settles only about half the time.
    """
    if not (sigma > 0 and gap > 0 and math.isfinite(sigma) and math.isfinite(gap) and 0.0 < power < 1.0):
        return None

    def short(n: float) -> bool:
        return float(detectable_gap(sigma, n, n_star=n_star, alpha=alpha, power=power)) > gap

    low, high = 1.0, 1.0
    while short(high):
        high *= 2.0
        if high > 1e12:
            return None
    while high - low > 0.5:
        middle = (low + high) / 2.0
        if short(middle):
            low = middle
        else:
            high = middle
    return math.ceil(high)


@dataclass(frozen=True)
class SequentialInterval:
    """An always-valid interval on the estimate's own scale (a ratio for latency) and its p-value."""

    n: int
    n_star: float
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    null_value: float = 0.0
    sigma: float | None = None  # per-unit SD on the scale the boundary works in (log scale for ratios)
    log_scale: bool = False


def sequential_interval(
    estimate: float | None,
    se: float | None,
    n: int,
    *,
    n_star: float,
    alpha: float,
    null: float = 0.0,
    log_scale: bool = False,
) -> SequentialInterval:
    """The confidence sequence at this look; `log_scale`: estimate is a ratio and se is on log scale."""
    if estimate is not None and se is not None and n >= 2 and 0.0 <= se <= 1e-12 * max(1.0, abs(estimate)):
        # Every pair differs by the same amount (e.g. no errors in either arm): a degenerate interval.
        p = 1.0 if estimate == null else 0.0
        return SequentialInterval(n, n_star, estimate, estimate, estimate, p, null, 0.0, log_scale)
    if estimate is None or se is None or n < 2 or not math.isfinite(se) or se <= 0:
        return SequentialInterval(n, n_star, estimate, None, None, None, null, None, log_scale)
    if log_scale and estimate <= 0:
        return SequentialInterval(n, n_star, estimate, None, None, None, null, None, log_scale)
    centre = math.log(estimate) if log_scale else estimate
    centre_null = math.log(null) if log_scale else null
    width = float(half_width(se, n, n_star=n_star, alpha=alpha))
    p = float(always_valid_p((centre - centre_null) / se, n, n_star=n_star, alpha=alpha))
    low, high = centre - width, centre + width
    if log_scale:
        low, high = math.exp(low), math.exp(high)
    return SequentialInterval(n, n_star, estimate, low, high, p, null, se * math.sqrt(n), log_scale)


def from_test(
    result: TestResult, *, n_star: float, alpha: float, log_scale: bool = False
) -> SequentialInterval:
    """Confidence sequence for a fixed-horizon TestResult (its SE and n)."""
    return sequential_interval(
        result.estimate,
        result.se,
        result.n,
        n_star=n_star,
        alpha=alpha,
        null=result.null_value,
        log_scale=log_scale,
    )


def from_quantile(q: QuantileDifference, *, n_star: float, alpha: float) -> SequentialInterval:
    """Confidence sequence for a quantile difference; its SE is read back from the fixed t interval."""
    if not q.supported or q.estimate is None or q.ci_low is None or q.ci_high is None or q.n < 2:
        return SequentialInterval(q.n, n_star, q.estimate, None, None, None)
    se = (q.ci_high - q.ci_low) / (2.0 * t_quantile(1.0 - alpha / 2.0, q.n - 1))
    return sequential_interval(q.estimate, se, q.n, n_star=n_star, alpha=alpha)


@dataclass(frozen=True)
class SequentialComparison:
    """Always-valid intervals for one comparison: the primary estimate, relative change and quantiles."""

    primary: SequentialInterval
    relative: SequentialInterval | None = None
    quantiles: tuple[tuple[float, SequentialInterval], ...] = ()


def sequential_comparison(result: MetricComparison, *, n_star: float, alpha: float) -> SequentialComparison:
    """Confidence sequences for every estimate of a MetricComparison computed at level `alpha`."""
    primary = from_test(result.primary, n_star=n_star, alpha=alpha, log_scale=result.kind == "latency")
    relative = None if result.relative is None else from_test(result.relative, n_star=n_star, alpha=alpha)
    quantiles = tuple((q.quantile, from_quantile(q, n_star=n_star, alpha=alpha)) for q in result.quantiles)
    return SequentialComparison(primary, relative, quantiles)
