"""Every arm ranked from the pairwise judge's preferences (Bradley–Terry, `analysis.stats.ranking`)."""

from __future__ import annotations

import numpy as np

from analysis.csv_input import ExperimentTable
from analysis.stats.ranking import PairwiseOutcomes, Ranking, bradley_terry


def pairwise_from_table(table: ExperimentTable, control: str) -> PairwiseOutcomes:
    """Candidate-vs-control outcomes from the first preference column (the CSV has no other pairs)."""
    column = next((m for m in table.metrics if m.kind == "preference"), None)
    empty = np.zeros(0, dtype=np.int64)
    if column is None:
        return PairwiseOutcomes(None, empty, empty, np.zeros(0))
    ctrl = table.arms.index(control)
    rows, arms = np.nonzero(~np.isnan(column.values))
    keep = arms != ctrl
    rows, arms = rows[keep], arms[keep]
    scores = column.values[rows, arms]
    first = np.minimum(arms, ctrl).astype(np.int64)
    second = np.maximum(arms, ctrl).astype(np.int64)
    return PairwiseOutcomes(column.name, first, second, np.where(first == arms, scores, 1.0 - scores))


def rank_arms(arms: tuple[str, ...], control: str, pairwise: PairwiseOutcomes) -> Ranking | None:
    """Bradley–Terry ranking of every arm, or None without preferences."""
    if pairwise.first.size == 0:
        return None
    return bradley_terry(arms, pairwise.first, pairwise.second, pairwise.score, reference=control)
