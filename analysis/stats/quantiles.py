"""Paired quantile differences (p50/p95/p99) with failures as +∞.

Large n: asymptotic interval from the Bahadur representation Q̂ − Q ≈ (q − 1{X ≤ Q})·s, with the
sparsity s = 1/f(Q) estimated from order statistics (Siddiqui; Hall–Sheather bandwidth). The pairing
enters through the per-pair influence values, so it costs one partial sort per arm. It is the default at every
n we report (calibrated from 150 pairs, bench/calibration.py); a paired percentile bootstrap, vectorised
over blocks of resamples, is available on request (it ignores clusters and over-covers a little).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from analysis.stats.distributions import FloatArray, normal_pdf, normal_quantile
from analysis.stats.paired import IntArray, standard_error, t_result
from analysis.stats.results import QuantileDifference

QuantileMethod = Literal["asymptotic", "bootstrap"]
DEFAULT_QUANTILES = (0.5, 0.95, 0.99)
# A quantile is reported only with this many observations on each side of it.
MIN_TAIL = 10
_BLOCK_CELLS = 4_000_000


def order_statistic_index(q: float, n: int) -> int:
    """0-based index of the type-1 (inverse-ECDF) sample quantile: X₍⌈qn⌉₎."""
    return min(max(math.ceil(q * n) - 1, 0), n - 1)


def hall_sheather_bandwidth(n: int, q: float, alpha: float) -> float:
    """Hall & Sheather (1988) bandwidth for sparsity estimation at quantile q."""
    x = normal_quantile(q)
    shape = 1.5 * normal_pdf(x) ** 2 / (2 * x * x + 1)
    return float(n ** (-1 / 3) * normal_quantile(1 - alpha / 2) ** (2 / 3) * shape ** (1 / 3))


def minimum_pairs(q: float) -> int:
    """Smallest n with MIN_TAIL observations on each side of quantile q."""
    return math.ceil(MIN_TAIL / min(q, 1 - q) - 1e-9)


def _label(q: float) -> str:
    return f"p{100 * q:g}"


def _sparsity_window(n: int, q: float, h: float) -> tuple[float, float, int, int]:
    """The probabilities q ± h (within [0, 1]) and the order statistics at them."""
    low, high = max(q - h, 0.0), min(q + h, 1.0)
    return low, high, order_statistic_index(low, n), order_statistic_index(high, n)


def _sparsity(partitioned: FloatArray, q: float, h: float) -> float:
    low, high, i_low, i_high = _sparsity_window(partitioned.size, q, h)
    return float((partitioned[i_high] - partitioned[i_low]) / (high - low))


def _order_statistics(n: int, quantiles: Sequence[float], alpha: float, method: QuantileMethod) -> list[int]:
    """The 0-based order statistics the quantiles read: each reported quantile's, and for the asymptotic
    interval those its sparsity is estimated from."""
    needed: set[int] = set()
    for q in quantiles:
        if n < minimum_pairs(q):
            continue
        needed.add(order_statistic_index(q, n))
        if method != "bootstrap":
            needed.update(_sparsity_window(n, q, hall_sheather_bandwidth(n, q, alpha))[2:])
    return sorted(needed)


def _asymptotic(
    control: FloatArray,
    candidate: FloatArray,
    partitioned: tuple[FloatArray, FloatArray],
    q: float,
    *,
    alpha: float,
    clusters: IntArray | None,
) -> QuantileDifference:
    n = control.size
    h = hall_sheather_bandwidth(n, q, alpha)
    k = order_statistic_index(q, n)
    q_ctrl, q_cand = float(partitioned[0][k]), float(partitioned[1][k])
    s_ctrl, s_cand = _sparsity(partitioned[0], q, h), _sparsity(partitioned[1], q, h)
    if not (math.isfinite(s_ctrl) and math.isfinite(s_cand)):
        return QuantileDifference(
            q,
            n,
            False,
            "none",
            reason=(f"failed requests reach the neighbourhood of {_label(q)}; its interval is unbounded"),
        )
    influence = (q - (candidate <= q_cand)) * s_cand - (q - (control <= q_ctrl)) * s_ctrl
    se, df = standard_error(influence - influence.mean(), clusters=clusters, n_params=1)
    result = t_result("", n, q_cand - q_ctrl, se, df, alpha=alpha, null=0.0)
    return QuantileDifference(
        q,
        n,
        True,
        "asymptotic",
        q_ctrl,
        q_cand,
        result.estimate,
        result.ci_low,
        result.ci_high,
        result.p_value,
        reason=result.notes[0] if result.notes else None,
    )


def _bootstrap(
    control: FloatArray,
    candidate: FloatArray,
    partitioned: tuple[FloatArray, FloatArray],
    qs: Sequence[float],
    *,
    alpha: float,
    resamples: int,
    seed: int,
) -> list[QuantileDifference]:
    n = control.size
    ks = [order_statistic_index(q, n) for q in qs]
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // n)
    replicates: list[FloatArray] = []
    for start in range(0, resamples, block):
        index = rng.integers(0, n, size=(min(block, resamples - start), n))
        ctrl = np.partition(control[index], ks, axis=1)[:, ks]
        cand = np.partition(candidate[index], ks, axis=1)[:, ks]
        with np.errstate(invalid="ignore"):
            diff = cand - ctrl
        # Both resampled quantiles infinite: both arms failed there alike, so no difference.
        replicates.append(np.where(np.isnan(diff), 0.0, diff))
    draws = np.concatenate(replicates)
    results = []
    for j, (q, k) in enumerate(zip(qs, ks, strict=True)):
        column = draws[:, j]
        low, high = np.quantile(column, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
        p = min(1.0, 2 * min(float(np.mean(column <= 0)), float(np.mean(column >= 0))))
        q_ctrl, q_cand = float(partitioned[0][k]), float(partitioned[1][k])
        results.append(
            QuantileDifference(
                q,
                n,
                True,
                "bootstrap",
                q_ctrl,
                q_cand,
                q_cand - q_ctrl,
                float(low) if math.isfinite(low) else None,
                float(high) if math.isfinite(high) else None,
                p,
                reason=None
                if math.isfinite(high)
                else "upper limit unbounded: resampled quantiles hit failures",
            )
        )
    return results


def quantile_differences(
    control: FloatArray,
    candidate: FloatArray,
    *,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    alpha: float = 0.05,
    clusters: IntArray | None = None,
    method: QuantileMethod = "asymptotic",
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[QuantileDifference, ...]:
    """Candidate − control quantile differences over pairs; +∞ marks a failed request."""
    n = int(control.size)
    # Only a few order statistics are read (`kth`): each arm is partitioned around them (O(n)), not sorted,
    # so `partitioned` holds the sorted values at those positions only.
    kth = _order_statistics(n, quantiles, alpha, method)
    partitioned = (np.partition(control, kth), np.partition(candidate, kth)) if kth else (control, candidate)
    use_bootstrap = method == "bootstrap"
    results: dict[float, QuantileDifference] = {}
    for q in quantiles:
        if n < minimum_pairs(q):
            results[q] = QuantileDifference(
                q,
                n,
                False,
                "none",
                reason=(f"{_label(q)} needs at least {minimum_pairs(q)} pairs, found {n}"),
            )
            continue
        k = order_statistic_index(q, n)
        for arm, values in (("control", partitioned[0]), ("candidate", partitioned[1])):
            if not math.isfinite(values[k]):
                results[q] = QuantileDifference(
                    q,
                    n,
                    False,
                    "none",
                    reason=(
                        f"over {100 * (1 - q):g}% of {arm} requests failed, so its {_label(q)} is infinite"
                    ),
                )
                break
    pending = [q for q in quantiles if q not in results]
    if use_bootstrap and pending:
        for item in _bootstrap(
            control, candidate, partitioned, pending, alpha=alpha, resamples=resamples, seed=seed
        ):
            results[item.quantile] = item
    else:
        for q in pending:
            results[q] = _asymptotic(control, candidate, partitioned, q, alpha=alpha, clusters=clusters)
    return tuple(results[q] for q in quantiles)
