"""Ranking of all arms from pairwise preferences: Bradley–Terry with bootstrap intervals.

P(i beats j) = πᵢ / (πᵢ + πⱼ); a tie counts as half a win for each side. Strengths are fitted by
Hunter's (2004) MM algorithm, reported as log-strengths centred at the control (0 = as good as the
control; log-odds of beating it). A small prior of `prior_ties` tie per pair keeps an arm that never
won finite. Intervals: a stratified bootstrap that redraws each pair's (win, tie, loss) counts from
their multinomial, vectorised over resamples; it treats comparisons as independent (clustering by
request is ignored, documented in docs/analysis.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.stats.distributions import FloatArray

IntArray = npt.NDArray[np.int64]


class RankingInputError(ValueError):
    """The pairwise outcomes cannot be ranked."""


@dataclass(frozen=True)
class PairwiseOutcomes:
    """Pairwise preferences: first[m] vs second[m] (arm indices), score of first in [0, 1] (½ = tie)."""

    scorer: str | None
    first: IntArray
    second: IntArray
    score: FloatArray


@dataclass(frozen=True)
class ArmStrength:
    """One arm's Bradley–Terry log-strength relative to the reference arm, with its bootstrap CI."""

    arm: str
    rank: int
    log_strength: float
    ci_low: float | None
    ci_high: float | None
    win_probability_vs_reference: float
    comparisons: int


@dataclass(frozen=True)
class Ranking:
    """Arms from best to worst."""

    reference: str
    arms: tuple[ArmStrength, ...]
    n_comparisons: int
    resamples: int


def _fit(wins: FloatArray, games: FloatArray, iterations: int = 500, tol: float = 1e-10) -> FloatArray:
    """MM fit of strengths for a batch: wins[b, i, j] = i's wins over j; returns log-strengths [b, k]."""
    batch, k, _ = wins.shape
    total_wins = wins.sum(axis=2)
    strength = np.ones((batch, k))
    for _ in range(iterations):
        pair_sum = strength[:, :, None] + strength[:, None, :]
        denominator = (games / pair_sum).sum(axis=2)
        updated = total_wins / denominator
        updated /= np.exp(np.log(updated).mean(axis=1, keepdims=True))
        done = np.max(np.abs(updated - strength)) < tol
        strength = updated
        if done:
            break
    result: FloatArray = np.log(strength)
    return result


def _tables(first: IntArray, second: IntArray, score: FloatArray, k: int) -> tuple[IntArray, IntArray]:
    """Per unordered pair (i < j): counts of i-wins, ties and j-wins."""
    a, b = np.minimum(first, second), np.maximum(first, second)
    s = np.where(first == a, score, 1.0 - score)  # score of the lower-indexed arm
    pair = a * k + b
    counts = np.zeros((k * k, 3), dtype=np.int64)
    np.add.at(counts, (pair, np.where(s > 0.5, 0, np.where(s < 0.5, 2, 1))), 1)
    present = np.flatnonzero(counts.sum(axis=1))
    return present, counts[present]


def bradley_terry(
    arms: Sequence[str],
    first: IntArray,
    second: IntArray,
    score: FloatArray,
    *,
    reference: str,
    alpha: float = 0.05,
    resamples: int = 1000,
    prior_ties: float = 0.5,
    seed: int = 0,
) -> Ranking:
    """Rank `arms` from comparisons (first[m] vs second[m], score[m] = 1 first wins, ½ tie, 0 loss)."""
    k = len(arms)
    if reference not in arms:
        raise RankingInputError(f"reference: expected one of {', '.join(arms)}, found {reference!r}")
    if not (first.size == second.size == score.size):
        raise RankingInputError("first, second, score: expected arrays of the same length")
    if first.size and (np.any(first == second) or first.min() < 0 or max(first.max(), second.max()) >= k):
        raise RankingInputError(f"first, second: expected distinct arm indices below {k}")
    present, counts = _tables(first, second, score, k)
    ia, ib = present // k, present % k

    def win_matrix(c: npt.NDArray[np.float64]) -> tuple[FloatArray, FloatArray]:
        batch = c.shape[0]
        wins = np.full((batch, k, k), 0.0)
        games = np.full((batch, k, k), 0.0)
        off_diagonal = ~np.eye(k, dtype=bool)
        wins[:, off_diagonal] = prior_ties / 2.0
        games[:, off_diagonal] = prior_ties
        a_wins = c[:, :, 0] + c[:, :, 1] / 2.0
        b_wins = c[:, :, 2] + c[:, :, 1] / 2.0
        played = c.sum(axis=2)
        # Each unordered pair appears once in (ia, ib), so plain fancy-index updates are exact.
        wins[:, ia, ib] += a_wins
        wins[:, ib, ia] += b_wins
        games[:, ia, ib] += played
        games[:, ib, ia] += played
        return wins, games

    point = _fit(*win_matrix(counts[None, :, :].astype(np.float64)))[0]
    ref = arms.index(reference)
    point = point - point[ref]
    lows: FloatArray | None = None
    highs: FloatArray | None = None
    if resamples > 0 and present.size:
        rng = np.random.default_rng(seed)
        totals = counts.sum(axis=1)
        probabilities = counts / totals[:, None]
        draws = np.stack(
            [rng.multinomial(totals[p], probabilities[p], size=resamples) for p in range(present.size)],
            axis=1,
        ).astype(np.float64)
        boot = _fit(*win_matrix(draws))
        boot = boot - boot[:, ref : ref + 1]
        lows, highs = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    played_by_arm = np.zeros(k, dtype=np.int64)
    np.add.at(played_by_arm, first, 1)
    np.add.at(played_by_arm, second, 1)
    order = np.argsort(-point, kind="stable")
    strengths = tuple(
        ArmStrength(
            arm=arms[i],
            rank=position + 1,
            log_strength=float(point[i]),
            ci_low=None if lows is None or i == ref else float(lows[i]),
            ci_high=None if highs is None or i == ref else float(highs[i]),
            win_probability_vs_reference=float(1.0 / (1.0 + np.exp(-point[i]))),
            comparisons=int(played_by_arm[i]),
        )
        for position, i in enumerate(order)
    )
    return Ranking(reference, strengths, int(first.size), resamples if present.size else 0)
