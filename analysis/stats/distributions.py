"""Distribution functions on top of `scipy.special` (importing `scipy.stats` costs ~2 s per CLI call)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special

FloatArray = npt.NDArray[np.float64]

# R's binom.test compares densities with this relative tolerance (stats/R/binom.test.R).
_R_REL_ERR = 1 + 1e-7


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value of Student's t."""
    return float(min(1.0, 2.0 * special.stdtr(df, -abs(t))))


def t_quantile(q: float, df: float) -> float:
    """Quantile of Student's t with `df` degrees of freedom."""
    return float(special.stdtrit(df, q))


def normal_quantile(q: float) -> float:
    """Quantile of the standard normal."""
    return float(special.ndtri(q))


def normal_two_sided_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic."""
    return float(min(1.0, 2.0 * special.ndtr(-abs(z))))


def normal_pdf(x: float) -> float:
    """Density of the standard normal."""
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def chi2_sf(x: float, df: float) -> float:
    """Upper tail of the χ² distribution."""
    return float(special.chdtrc(df, x))


def binomial_log_pmf(k: FloatArray, n: int, p: float) -> FloatArray:
    """log P(X = k) for X ~ Binomial(n, p), vectorised over k (0 < p < 1)."""
    log_choose = special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)
    result: FloatArray = log_choose + k * math.log(p) + (n - k) * math.log1p(-p)
    return result


def binomial_two_sided_p(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial p-value, summing outcomes no more likely than k (as R's `binom.test`)."""
    if n == 0:
        return 1.0
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie strictly between 0 and 1, found {p}")
    support = np.arange(n + 1, dtype=np.float64)
    log_pmf = binomial_log_pmf(support, n, p)
    observed = log_pmf[k]
    mode = n * p
    if k == mode:
        return 1.0
    # Summing in probability space matches R; the tolerance absorbs rounding in the density comparison.
    pmf = np.exp(log_pmf)
    threshold = math.exp(observed) * _R_REL_ERR
    if k < mode:
        upper = support >= math.ceil(mode)
        others = float(pmf[upper & (pmf <= threshold)].sum())
        total = float(pmf[: k + 1].sum()) + others
    else:
        lower = support <= math.floor(mode)
        others = float(pmf[lower & (pmf <= threshold)].sum())
        total = float(pmf[k:].sum()) + others
    return min(1.0, total)


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval for a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    low = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, alpha / 2))
    high = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1 - alpha / 2))
    return (low, high)


def wilson_interval(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927)."""
    z = normal_quantile(1 - alpha / 2)
    p = k / n
    centre = (2 * n * p + z * z) / (2 * (n + z * z))
    half = z * math.sqrt(z * z + 4 * n * p * (1 - p)) / (2 * (n + z * z))
    return (centre - half, centre + half)
