"""Peeking by simulation: A/A experiments looked at again and again; how often does a rule pick a winner?

The naive rule stops at the first look whose fixed-horizon paired t test has p < 0.05; the sequential
rule stops when the always-valid confidence sequence (normal mixture, N* = the last look) excludes 0.
`peeking` also measures the simultaneous coverage of the sequences under a real effect.
`bench/bench_peeking.py` runs 10,000 experiments per row; tests/analysis/test_sequential.py runs 1,000.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from analysis.stats.distributions import FloatArray
from analysis.stats.sequential import half_width

Draw = Callable[[np.random.Generator, tuple[int, int]], FloatArray]


@dataclass(frozen=True)
class PeekingResult:
    sims: int
    looks: int
    naive_rate: float
    sequential_rate: float
    coverage: float  # share of runs whose sequence held the true mean at every look


def _running(d: FloatArray, looks: np.ndarray) -> tuple[FloatArray, FloatArray]:
    """Mean and standard error of the first n values of each row, at every look n (vectorised)."""
    sums = np.cumsum(d, axis=1)[:, looks - 1]
    squares = np.cumsum(d * d, axis=1)[:, looks - 1]
    mean = sums / looks
    variance = (squares - looks * mean * mean) / (looks - 1)
    return mean, np.sqrt(np.maximum(variance, 0.0) / looks)


def peeking(
    draw: Draw, true_mean: float, *, sims: int, every: int, max_n: int, alpha: float = 0.05, seed: int = 0
) -> PeekingResult:
    """Run `sims` experiments of per-pair differences from `draw`, looking every `every` pairs."""
    rng = np.random.default_rng(seed)
    looks = np.arange(every, max_n + 1, every)
    rejections_naive = np.zeros(sims, dtype=bool)
    rejections_seq = np.zeros(sims, dtype=bool)
    covered = np.ones(sims, dtype=bool)
    block = max(1, 2_000_000 // max_n)
    for start in range(0, sims, block):
        size = min(block, sims - start)
        mean, se = _running(draw(rng, (size, max_n)), looks)
        t_crit = special.stdtrit(looks - 1.0, 1 - alpha / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            rejections_naive[start : start + size] = (np.abs(mean - true_mean) / se > t_crit).any(axis=1)
        width = half_width(se, looks, n_star=float(max_n), alpha=alpha)
        rejections_seq[start : start + size] = (np.abs(mean) > width).any(axis=1)
        covered[start : start + size] = (np.abs(mean - true_mean) <= width).all(axis=1)
    return PeekingResult(
        sims,
        looks.size,
        float(rejections_naive.mean()),
        float(rejections_seq.mean()),
        float(covered.mean()),
    )


def normal_aa(rng: np.random.Generator, shape: tuple[int, int]) -> FloatArray:
    """A/A judge-score differences: the two arms' noise, no effect."""
    return rng.normal(0.0, 1.5, shape)


def binary_aa(rng: np.random.Generator, shape: tuple[int, int]) -> FloatArray:
    """A/A error-rate differences: two independent 5 % error indicators."""
    return (rng.random(shape) < 0.05).astype(np.float64) - (rng.random(shape) < 0.05).astype(np.float64)


def skewed_effect(rng: np.random.Generator, shape: tuple[int, int]) -> FloatArray:
    """Log-latency-like differences with a real effect: exponential noise, mean 0.1."""
    return rng.exponential(1.0, shape) - rng.exponential(1.0, shape) + 0.1
