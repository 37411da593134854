"""Cluster-robust variance of a mean: one-way (CR1) or two-way (Cameron, Gelbach & Miller 2011).

`clusters` is one label per observation (1-D, one-way) or an (n × 2) array of labels in two dimensions, e.g.
conversation and prompt fingerprint. Two-way: V = V₁ + V₂ − V₁∩₂, each one-way CR1 term with its own
small-sample factor G/(G−1)·(n−1)/(n−k) and df = min(G₁, G₂) − 1, as statsmodels' `cov_cluster_2groups`
and Stata's `cgmreg`. It is not the one-way variance on connected components of the two, which chain the
whole traffic into one cluster as soon as conversations share an opening prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.stats.distributions import FloatArray
from analysis.stats.results import ClusterDimension, ClusteringSummary

IntArray = npt.NDArray[np.int64]

__all__ = [
    "ClusterSums",
    "ClusteredVariance",
    "cluster_columns",
    "cluster_sums",
    "cluster_variance",
    "clustering_summary",
    "combine_clusterings",
    "factorise",
]


@dataclass(frozen=True)
class ClusteredVariance:
    """Variance of the mean, its t degrees of freedom, and which dimensions entered it."""

    variance: float
    df: float
    used: tuple[bool, ...]


def cluster_columns(clusters: IntArray, n: int) -> list[IntArray]:
    if clusters.ndim == 1:
        return [clusters]
    if clusters.ndim != 2 or clusters.shape[1] not in (1, 2) or clusters.shape[0] != n:
        raise ValueError(f"clusters: expected n or (n × 2) labels for n = {n}, found shape {clusters.shape}")
    return [clusters[:, j] for j in range(clusters.shape[1])]


def factorise(labels: IntArray) -> tuple[IntArray, int]:
    """Dense codes 0..G−1 and G. Labels that are already small non-negative codes (the loaders' codes, sliced
    to the complete pairs) are counted in O(n) instead of sorted."""
    if labels.size and labels.dtype.kind in "iu" and labels.min() >= 0 and labels.max() < 4 * labels.size:
        present = np.bincount(labels) > 0
        dense = np.cumsum(present) - 1
        return dense[labels].astype(np.int64), int(dense[-1]) + 1
    uniques, codes = np.unique(labels, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), int(uniques.size)


@dataclass(frozen=True)
class ClusterSums:
    """One clustering of a mean's residuals: its number of clusters G and Σ_g(Σ_{i∈g} eᵢ)². Everything the
    cluster-robust variance needs, so it can come from one row-level pass (`cluster_sums`) or from per-cell
    sums computed elsewhere (many segments at once: `analysis.stats.grouped`)."""

    groups: int
    squares: float


def cluster_sums(residuals: FloatArray, codes: IntArray, groups: int) -> ClusterSums:
    """G and the sum of squared per-cluster residual sums, for dense cluster codes 0..G−1."""
    sums = np.bincount(codes, weights=residuals, minlength=groups)
    return ClusterSums(groups, float(np.dot(sums, sums)))


def _one_way(sums: ClusterSums, n: int, n_params: int) -> float | None:
    """CR1: G/(G−1)·(n−1)/(n−k)·Σ_g(Σ_{i∈g} eᵢ)²/n² (Stata's small-sample factor); None below 2 clusters."""
    groups = sums.groups
    if groups < 2:
        return None
    factor = groups / (groups - 1) * (n - 1) / (n - n_params)
    return factor * sums.squares / (n * n)


def _trivial(groups: int, n: int) -> bool:
    """Every observation its own cluster, or all in one: the dimension clusters nothing."""
    return groups in (1, n)


def cluster_variance(residuals: FloatArray, clusters: IntArray, *, n_params: int) -> ClusteredVariance | None:
    """One-way or two-way cluster-robust variance of a mean from its residuals; None when not estimable."""
    n = residuals.size
    dims = [factorise(column) for column in cluster_columns(clusters, n)]

    def intersection() -> ClusterSums:
        (codes_1, _), (codes_2, groups_2) = dims
        codes_12, groups_12 = factorise(codes_1 * groups_2 + codes_2)
        return cluster_sums(residuals, codes_12, groups_12)

    sums = [cluster_sums(residuals, codes, groups) for codes, groups in dims]
    return combine_clusterings(n, n_params, sums, intersection)


def combine_clusterings(
    n: int, n_params: int, dims: Sequence[ClusterSums], intersection: Callable[[], ClusterSums]
) -> ClusteredVariance | None:
    """The variance of a mean of n values from its clusterings (one, or two plus `intersection`, asked for
    only when both dimensions cluster something); None when not estimable.

    A trivial dimension (all singletons, or one cluster) leaves one-way clustering on the other; if the
    two-way variance is not positive, the larger one-way variance is used (Cameron, Gelbach & Miller 2011,
    §2.3, and their df)."""
    if len(dims) == 1:
        variance = _one_way(dims[0], n, n_params)
        return None if variance is None else ClusteredVariance(variance, float(dims[0].groups - 1), (True,))
    active = [i for i, d in enumerate(dims) if not _trivial(d.groups, n)]
    if not active:  # neither clusters anything: a dimension of singletons gives the iid-equivalent CR1
        active = [i for i, d in enumerate(dims) if d.groups == n][:1]
    if len(active) == 1:
        chosen = dims[active[0]]
        variance = _one_way(chosen, n, n_params)
        used = tuple(i == active[0] for i in range(len(dims)))
        return None if variance is None else ClusteredVariance(variance, float(chosen.groups - 1), used)
    if not active:
        return None
    first, second = dims
    one = _one_way(first, n, n_params)
    two = _one_way(second, n, n_params)
    both = _one_way(intersection(), n, n_params)
    assert one is not None and two is not None and both is not None  # non-trivial: at least 2 clusters each
    variance = one + two - both
    if variance > 0.0:
        return ClusteredVariance(variance, float(min(first.groups, second.groups) - 1), (True, True))
    if one >= two:
        return ClusteredVariance(one, float(first.groups - 1), (True, False))
    return ClusteredVariance(two, float(second.groups - 1), (False, True))


def _iid_variance(residuals: FloatArray, n_params: int) -> float:
    n = residuals.size
    return float(np.dot(residuals, residuals)) / (n - n_params) / n


def clustering_summary(values: FloatArray, clusters: IntArray) -> ClusteringSummary:
    """Per dimension: clusters, the largest cluster's share of the values and the one-way design effect
    (clustered / iid variance of their mean); and the design effect of the variance the tests use."""
    n = int(values.size)
    residuals = values - values.mean() if n else values
    iid = _iid_variance(residuals, 1) if n > 1 else 0.0

    def effect(variance: float | None) -> float | None:
        return variance / iid if variance is not None and iid > 0.0 else None

    combined = cluster_variance(residuals, clusters, n_params=1) if n > 1 else None
    dimensions = []
    for index, column in enumerate(cluster_columns(clusters, n)):
        codes, groups = factorise(column)
        largest = int(np.bincount(codes).max()) if n else 0
        one_way = _one_way(cluster_sums(residuals, codes, groups), n, 1) if n > 1 else None
        dimensions.append(
            ClusterDimension(
                clusters=groups,
                largest_share=largest / n if n else 0.0,
                design_effect=effect(one_way),
                used=combined is not None and combined.used[index],
            )
        )
    return ClusteringSummary(n, effect(None if combined is None else combined.variance), tuple(dimensions))
