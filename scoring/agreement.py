"""Agreement between two raters (judge vs human): Cohen's kappa, weighted kappa for ordinal scales, with CIs.

Pure functions over paired ratings; the asymptotic standard error and Wald interval are those of
statsmodels' `cohens_kappa` (Fleiss, Cohen & Everitt 1969), which match SAS PROC FREQ's AGREE output.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from statsmodels.stats.inter_rater import cohens_kappa

__all__ = ["Kappa", "KappaWeights", "kappa", "kappa_from_table"]

KappaWeights = Literal["none", "linear", "quadratic"]


@dataclass(frozen=True)
class Kappa:
    """Kappa with its asymptotic standard error and a 95 % Wald interval (nan when both raters used one
    category only: kappa is undefined there)."""

    kappa: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    weights: KappaWeights


def kappa_from_table(table: Sequence[Sequence[float]], weights: KappaWeights = "none") -> Kappa:
    """Kappa of a square table of counts (rater 1 in rows, rater 2 in columns, categories in order)."""
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"table: expected a square matrix of counts, found shape {counts.shape}")
    wt = None if weights == "none" else weights
    with np.errstate(invalid="ignore", divide="ignore"):  # undefined (nan) when chance agreement is 1
        result = cohens_kappa(counts, wt=wt)
    return Kappa(
        kappa=float(result.kappa),
        se=float(result.std_kappa),
        ci_low=float(result.kappa_low),
        ci_high=float(result.kappa_upp),
        n=int(counts.sum()),
        weights=weights,
    )


def kappa(
    first: Sequence[Hashable],
    second: Sequence[Hashable],
    categories: Sequence[Hashable],
    weights: KappaWeights = "none",
) -> Kappa:
    """Kappa of paired ratings; `categories` fixes the order (it matters for weighted kappa), e.g. 1..10."""
    if len(first) != len(second):
        raise ValueError(f"ratings: expected pairs, found {len(first)} and {len(second)} ratings")
    if not first:
        raise ValueError("ratings: expected at least one pair, found none")
    index = {category: i for i, category in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for a, b in zip(first, second, strict=True):
        if a not in index or b not in index:
            raise ValueError(f"ratings: expected values in {list(categories)}, found {a!r} / {b!r}")
        table[index[a], index[b]] += 1
    return kappa_from_table(table.tolist(), weights)
