"""Health checks before any verdict: completeness, error imbalance, minimum n, A/A noise floor, judge
consistency."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from analysis.stats.distributions import chi2_sf
from analysis.stats.multiplicity import adjust_p_values
from analysis.stats.results import HealthCheck

# Like a sample-ratio-mismatch check: a tiny p-value means missingness depends on the arm.
COMPLETENESS_THRESHOLD = 0.001
# The A/A check blocks a decision, so it fails only on strong evidence (SRM practice): at the
# experiment's alpha of 0.05 one clean experiment in twenty would be blocked by chance alone.
AA_THRESHOLD = 0.001
MIN_PAIRS = 100
# A pairwise judge whose verdict flips with the order the answers are shown in for more than half of the
# prompts judged both ways is mostly judging the position, not the answers: its preference is noise.
JUDGE_SPLIT_LIMIT = 0.5
JUDGE_MIN_PAIRS = 30


def missingness_chi2(present: Mapping[str, int], expected: int) -> tuple[float, float]:
    """χ² test of homogeneity of the present/missing split across arms (df = arms − 1)."""
    counts = np.array([[p, expected - p] for p in present.values()], dtype=np.float64)
    if counts.shape[0] < 2 or counts[:, 1].sum() == 0 or counts[:, 0].sum() == 0:
        return (0.0, 1.0)
    expected_counts = counts.sum(axis=1, keepdims=True) * counts.sum(axis=0, keepdims=True) / counts.sum()
    statistic = float((((counts - expected_counts) ** 2) / expected_counts).sum())
    return (statistic, chi2_sf(statistic, counts.shape[0] - 1))


def completeness_checks(
    present_by_metric: Mapping[str, Mapping[str, int]],
    expected: int,
    *,
    threshold: float = COMPLETENESS_THRESHOLD,
) -> tuple[HealthCheck, ...]:
    """One check per metric: does the share of missing replays differ by arm? Holm across metrics."""
    names = list(present_by_metric)
    raw = [missingness_chi2(present_by_metric[name], expected) for name in names]
    adjusted = adjust_p_values([p for _, p in raw], "holm")
    checks = []
    for name, (statistic, _), p in zip(names, raw, adjusted, strict=True):
        shares = ", ".join(f"{arm} {count}/{expected}" for arm, count in present_by_metric[name].items())
        assert p is not None
        checks.append(
            HealthCheck(
                f"completeness:{name}",
                p >= threshold,
                f"present by arm: {shares}; chi2 = {statistic:.3g}, Holm-adjusted p = {p:.3g} "
                f"(fails below {threshold:g})",
                p,
            )
        )
    return tuple(checks)


def error_imbalance_check(p_by_candidate: Mapping[str, float | None], *, alpha: float) -> HealthCheck:
    """Does any candidate fail more (or less) often than the control? Exact McNemar p, Holm across arms."""
    if not p_by_candidate:
        return HealthCheck("error_imbalance", None, "no error column, so error rates were not compared")
    names = list(p_by_candidate)
    adjusted = adjust_p_values([p_by_candidate[name] for name in names], "holm")
    flagged = [name for name, p in zip(names, adjusted, strict=True) if p is not None and p < alpha]
    smallest = min((p for p in adjusted if p is not None), default=None)
    detail = (
        f"error rates differ for: {', '.join(flagged)}"
        if flagged
        else "no candidate's error rate differs from the control's"
    )
    return HealthCheck("error_imbalance", not flagged, detail + " (Holm across candidates)", smallest)


def minimum_sample_check(n_by_comparison: Mapping[str, int], *, min_pairs: int = MIN_PAIRS) -> HealthCheck:
    """Every comparison has at least `min_pairs` complete pairs."""
    short = {name: n for name, n in n_by_comparison.items() if n < min_pairs}
    if not short:
        return HealthCheck("minimum_n", True, f"every comparison has at least {min_pairs} complete pairs")
    listed = ", ".join(f"{name} ({n})" for name, n in short.items())
    return HealthCheck("minimum_n", False, f"fewer than {min_pairs} complete pairs: {listed}")


def judge_consistency_check(
    split: int, judged: int, *, limit: float = JUDGE_SPLIT_LIMIT, min_pairs: int = JUDGE_MIN_PAIRS
) -> HealthCheck:
    """Of the pairs judged in both orders, the share whose two verdicts disagree must not exceed `limit`."""
    if judged < min_pairs:
        return HealthCheck(
            "judge_consistency", None, f"{judged} pairs judged in both orders (fewer than {min_pairs})"
        )
    share = split / judged
    detail = (
        f"{split} of {judged} pairs judged in both orders ({share:.0%}) got a different verdict when the "
        f"answers swapped places (fails above {limit:.0%})"
    )
    return HealthCheck("judge_consistency", share <= limit, detail, None)


def aa_noise_floor_check(
    p_by_metric: Mapping[str, float | None] | None, *, alpha: float = AA_THRESHOLD
) -> HealthCheck:
    """Two identical control arms must not differ: Holm across metrics at `alpha` (default 0.001)."""
    if p_by_metric is None:
        return HealthCheck("aa_noise_floor", None, "no A/A arm in this experiment")
    names = list(p_by_metric)
    adjusted = adjust_p_values([p_by_metric[name] for name in names], "holm")
    flagged = [name for name, p in zip(names, adjusted, strict=True) if p is not None and p < alpha]
    smallest = min((p for p in adjusted if p is not None), default=None)
    detail = (
        f"the A/A arms differ on: {', '.join(flagged)}"
        if flagged
        else "the A/A arms do not differ on any metric"
    )
    return HealthCheck(
        "aa_noise_floor", not flagged, f"{detail} (Holm across metrics, fails below {alpha:g})", smallest
    )
