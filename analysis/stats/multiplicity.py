"""Multiple-comparison adjustment of p-values: Holm, Benjamini–Hochberg, none."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Adjustment = Literal["holm", "bh", "none"]
ADJUSTMENTS: tuple[Adjustment, ...] = ("holm", "bh", "none")


def adjust_p_values(p_values: Sequence[float | None], method: Adjustment) -> list[float | None]:
    """Adjusted p-values in input order, as R's `p.adjust`; None entries are skipped and stay None."""
    if method not in ADJUSTMENTS:
        raise ValueError(f"method must be one of {', '.join(ADJUSTMENTS)}, found {method!r}")
    present = [i for i, p in enumerate(p_values) if p is not None]
    values = np.array([p_values[i] for i in present], dtype=np.float64)
    m = values.size
    if m == 0 or method == "none":
        return list(p_values)
    if method == "holm":
        order = np.argsort(values, kind="mergesort")
        scaled = (m - np.arange(m)) * values[order]
        adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    else:
        order = np.argsort(values, kind="mergesort")[::-1]
        scaled = m / np.arange(m, 0, -1) * values[order]
        adjusted_sorted = np.minimum(1.0, np.minimum.accumulate(scaled))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    result: list[float | None] = [None] * len(p_values)
    for slot, value in zip(present, adjusted, strict=True):
        result[slot] = float(value)
    return result
