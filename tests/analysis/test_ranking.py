"""Bradley–Terry ranking of arms from pairwise preferences."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.stats.ranking import RankingInputError, bradley_terry


def _simulate(strengths: list[float], per_pair: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    first, second, score = [], [], []
    for i in range(len(strengths)):
        for j in range(i + 1, len(strengths)):
            p = 1 / (1 + np.exp(strengths[j] - strengths[i]))
            wins = rng.random(per_pair) < p
            first += [i] * per_pair
            second += [j] * per_pair
            score += list(wins.astype(float))
    return np.array(first), np.array(second), np.array(score)


def test_recovers_known_strengths_with_covering_intervals() -> None:
    truth = [0.0, 0.8, -0.5, 0.3]
    first, second, score = _simulate(truth, 400, seed=1)
    ranking = bradley_terry(
        ["control", "a", "b", "c"], first, second, score, reference="control", resamples=500
    )
    assert [a.arm for a in ranking.arms] == ["a", "c", "control", "b"]
    for arm in ranking.arms:
        expected = truth[["control", "a", "b", "c"].index(arm.arm)]
        if arm.arm == "control":
            assert arm.log_strength == 0.0 and arm.ci_low is None
            continue
        assert arm.ci_low is not None and arm.ci_high is not None
        assert arm.ci_low < expected < arm.ci_high
        assert arm.log_strength == pytest.approx(expected, abs=0.2)


def test_ties_count_half_and_a_winless_arm_stays_finite() -> None:
    first = np.array([0, 0, 0, 0])
    second = np.array([1, 1, 2, 2])
    ranking = bradley_terry(
        ["c", "tied", "loser"], first, second, np.array([0.5, 0.5, 1.0, 1.0]), reference="c", resamples=0
    )
    by_arm = {a.arm: a for a in ranking.arms}
    # Only the small prior (half a tie per pair) links "tied" to "loser", so it sits near the control.
    assert by_arm["tied"].log_strength == pytest.approx(0.0, abs=0.3)
    assert by_arm["tied"].log_strength > by_arm["loser"].log_strength
    assert np.isfinite(by_arm["loser"].log_strength) and by_arm["loser"].log_strength < -0.5


def test_rejects_bad_input() -> None:
    with pytest.raises(RankingInputError, match="reference: expected one of a, b"):
        bradley_terry(["a", "b"], np.array([0]), np.array([1]), np.array([1.0]), reference="z")
    with pytest.raises(RankingInputError, match="distinct arm indices below 2"):
        bradley_terry(["a", "b"], np.array([0]), np.array([0]), np.array([1.0]), reference="a")
