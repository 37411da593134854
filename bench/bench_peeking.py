"""Peeking: A/A experiments looked at every 100 prompts; how often does each rule declare a winner?

The naive rule stops at the first look whose fixed-horizon paired t test has p < 0.05; the sequential
rule stops when the always-valid confidence sequence (normal mixture, N* = the last look) excludes 0.
Also the simultaneous coverage of the sequences under a real effect on skewed data.
`tests/analysis/test_sequential.py` runs the 1,000-experiment version; `make bench` runs this file.
Usage: `.venv/bin/python bench/bench_peeking.py [SIMS]`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.stats.distributions import FloatArray  # noqa: E402
from analysis.stats.sequential import half_width  # noqa: E402

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


def main() -> None:
    sims = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print("## Peeking: naive fixed-horizon rule vs always-valid sequences (`bench/bench_peeking.py`)")
    print()
    print(f"{sims:,} runs/row, a look every 100 prompts up to 5,000 (50 looks), α = 0.05, N* = 5,000.")
    print()
    print("| data | effect | naive rule declares a winner | sequential rule | simultaneous coverage | s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, draw, effect in (
        ("A/A, normal scores", normal_aa, 0.0),
        ("A/A, paired binary (5 % errors)", binary_aa, 0.0),
        ("skewed differences, effect 0.1", skewed_effect, 0.1),
    ):
        started = time.perf_counter()
        result = peeking(draw, effect, sims=sims, every=100, max_n=5000, seed=7)
        seconds = time.perf_counter() - started
        naive = f"{result.naive_rate:.1%}" if effect == 0 else "—"
        seq = f"{result.sequential_rate:.2%}" if effect == 0 else "—"
        print(f"| {label} | {effect:g} | {naive} | {seq} | {result.coverage:.2%} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
