"""Calibration of every test by simulation: A/A false-positive rates and CI coverage under a known effect.

Each scenario draws one experiment of a kind the engine meets (judge scores, preferences, paired binary,
cost, latency and its quantiles, clustered and CUPED differences) and reports each test's p-value and whether
its interval holds the truth. `calibrate` runs every scenario many times under A/A and under a true effect,
each from its own seeded generator, so results are reproducible. `bench/bench_calibration.py` runs 10,000
experiments per scenario; tests/analysis/test_calibration.py a small version.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analysis.stats import (
    compare_cost,
    compare_latency,
    compare_mean,
    compare_preference,
    mean_inference,
    paired_binary,
    quantile_differences,
)
from analysis.stats.distributions import normal_quantile
from analysis.stats.results import Inference

Rng = np.random.Generator
# A scenario draws one experiment and returns {test name: (p-value, covered or None)}.
Scenario = Callable[[Rng, bool], dict[str, tuple[float | None, bool | None]]]

T_BASED = (
    "paired t",
    "one-sample t vs 0.5",
    "cost paired t",
    "cost relative",
    "log-ratio t",
    "cluster-robust t",
    "CUPED t",
)


def _covered(low: float | None, high: float | None, truth: float) -> bool | None:
    if low is None or high is None:
        return None
    return low <= truth <= high


def numeric(rng: Rng, effect: bool) -> dict[str, tuple[float | None, bool | None]]:
    shift = 0.3 if effect else 0.0
    base = rng.normal(6.0, 1.5, 60)
    control = base + rng.normal(0, 1, 60)
    candidate = base + shift + rng.normal(0, 1, 60)
    r = compare_mean(control, candidate)
    return {
        "paired t": (r.primary.p_value, _covered(r.primary.ci_low, r.primary.ci_high, shift)),
        "wilcoxon pratt": (r.robustness[0].p_value, None),
    }


def judge_scores(rng: Rng, effect: bool) -> dict[str, tuple[float | None, bool | None]]:
    # Integer judge scores 1–10 produce many zero differences: the Pratt case.
    base = rng.integers(3, 9, 80)
    control = np.clip(base + rng.integers(-1, 2, 80), 1, 10).astype(float)
    candidate = np.clip(base + rng.integers(-1, 2, 80), 1, 10).astype(float)
    r = compare_mean(control, candidate)
    del effect
    return {"wilcoxon pratt (integer scores)": (r.robustness[0].p_value, None)}


def preference(rng: Rng, effect: bool) -> dict[str, tuple[float | None, bool | None]]:
    win = 0.40 if effect else 0.35
    loss = 0.30 if effect else 0.35
    scores = rng.choice([1.0, 0.0, 0.5], size=150, p=[win, loss, 1 - win - loss])
    truth = win + 0.5 * (1 - win - loss)
    r = compare_preference(scores)
    return {
        "one-sample t vs 0.5": (r.primary.p_value, _covered(r.primary.ci_low, r.primary.ci_high, truth)),
        "exact binomial (decisive)": (r.robustness[0].p_value, None),
    }


def binary(rng: Rng, effect: bool) -> dict[str, tuple[float | None, bool | None]]:
    n = 400
    shared = rng.random(n) < 0.5
    control = (rng.random(n) < np.where(shared, 0.2, 0.04)).astype(float)
    p_cand = np.where(shared, 0.2, 0.04) + (0.04 if effect else 0.0)
    candidate = (rng.random(n) < p_cand).astype(float)
    r = paired_binary(control, candidate)
    truth = 0.04 if effect else 0.0
    chi2 = r.robustness[0].p_value
    return {
        "exact McNemar + Newcombe": (r.primary.p_value, _covered(r.primary.ci_low, r.primary.ci_high, truth)),
        "McNemar chi2 corrected": (chi2, None),
    }


def cost(rng: Rng, effect: bool) -> dict[str, tuple[float | None, bool | None]]:
    n = 300
    tokens = rng.lognormal(6, 0.8, n)
    control = tokens * 3e-6 * rng.lognormal(0, 0.2, n)
    factor = 0.8 if effect else 1.0
    candidate = tokens * 3e-6 * factor * rng.lognormal(0, 0.2, n)
    mean_tokens = math.exp(6 + 0.8**2 / 2) * 3e-6 * math.exp(0.2**2 / 2)
    r = compare_cost(control, candidate)
    assert r.relative is not None
    return {
        "cost paired t": (
            r.primary.p_value,
            _covered(r.primary.ci_low, r.primary.ci_high, mean_tokens * (factor - 1)),
        ),
        "cost relative": (r.relative.p_value, _covered(r.relative.ci_low, r.relative.ci_high, factor - 1)),
    }


def _latency_pairs(rng: Rng, n: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    shared = rng.normal(0, 0.5, n)
    control = np.exp(6.5 + shared + rng.normal(0, 0.3, n))
    candidate = np.exp(6.5 + math.log(ratio) + shared + rng.normal(0, 0.3, n))
    return control, candidate


def latency(rng: Rng, effect: bool) -> dict[str, tuple[float | None, bool | None]]:
    ratio = 0.9 if effect else 1.0
    control, candidate = _latency_pairs(rng, 200, ratio)
    r = compare_latency(control, candidate, quantiles=())
    return {"log-ratio t": (r.primary.p_value, _covered(r.primary.ci_low, r.primary.ci_high, ratio))}


def _true_quantile(q: float, ratio: float) -> float:
    return math.exp(6.5 + math.log(ratio) + math.sqrt(0.5**2 + 0.3**2) * normal_quantile(q))


def quantiles_asymptotic(rng: Rng, effect: bool) -> dict[str, tuple[float | None, bool | None]]:
    ratio = 0.9 if effect else 1.0
    control, candidate = _latency_pairs(rng, 3000, ratio)
    out: dict[str, tuple[float | None, bool | None]] = {}
    for q in quantile_differences(control, candidate, quantiles=(0.5, 0.95, 0.99), method="asymptotic"):
        truth = _true_quantile(q.quantile, ratio) - _true_quantile(q.quantile, 1.0)
        out[f"p{100 * q.quantile:g} asymptotic"] = (q.p_value, _covered(q.ci_low, q.ci_high, truth))
    return out


def quantiles_bootstrap(rng: Rng, effect: bool) -> dict[str, tuple[float | None, bool | None]]:
    ratio = 0.9 if effect else 1.0
    control, candidate = _latency_pairs(rng, 300, ratio)
    seed = int(rng.integers(0, 2**31))
    (q,) = quantile_differences(
        control, candidate, quantiles=(0.5,), method="bootstrap", resamples=1000, seed=seed
    )
    # Percentile bootstrap of a median over-covers a little; reported, not used by default.
    truth = _true_quantile(0.5, ratio) - _true_quantile(0.5, 1.0)
    return {"p50 bootstrap": (q.p_value, _covered(q.ci_low, q.ci_high, truth))}


def clustered(rng: Rng, effect: bool) -> dict[str, tuple[float | None, bool | None]]:
    conversations = np.repeat(np.arange(100), 4)
    shift = 0.3 if effect else 0.0
    # Differences correlated within a conversation: the iid SE would be too small.
    d = shift + rng.normal(0, 0.7, 100)[conversations] + rng.normal(0, 0.7, 400)
    r = mean_inference(d, Inference(clusters=conversations), test="paired t")
    return {"cluster-robust t": (r.p_value, _covered(r.ci_low, r.ci_high, shift))}


def cuped(rng: Rng, effect: bool) -> dict[str, tuple[float | None, bool | None]]:
    shift = 0.3 if effect else 0.0
    covariate = rng.normal(0, 1, 120)
    d = shift + 0.8 * covariate + rng.normal(0, 0.6, 120)
    r = mean_inference(d, Inference(covariate=covariate, covariate_mean=0.0), test="paired t")
    return {"CUPED t": (r.p_value, _covered(r.ci_low, r.ci_high, shift))}


SCENARIOS: dict[str, Scenario] = {
    "numeric": numeric,
    "judge_scores": judge_scores,
    "preference": preference,
    "binary": binary,
    "cost": cost,
    "latency": latency,
    "quantiles_asymptotic": quantiles_asymptotic,
    "quantiles_bootstrap": quantiles_bootstrap,
    "clustered": clustered,
    "cuped": cuped,
}


@dataclass(frozen=True)
class Calibration:
    """Per test: A/A rejection rate at α = 0.05 and CI coverage under a known effect."""

    test: str
    sims: int
    aa_rejection_rate: float
    coverage: float | None


def calibrate(
    sims: int, *, seed: int = 20240601, scenarios: dict[str, Scenario] = SCENARIOS
) -> list[Calibration]:
    """Run every scenario `sims` times under A/A and under a true effect."""
    rows = []
    for offset, (_, scenario) in enumerate(scenarios.items()):
        rejected: dict[str, int] = {}
        covered: dict[str, list[bool]] = {}
        aa_rng, effect_rng = (
            np.random.default_rng([seed, offset, 0]),
            np.random.default_rng([seed, offset, 1]),
        )
        for _ in range(sims):
            for test, (p, _) in scenario(aa_rng, False).items():
                rejected[test] = rejected.get(test, 0) + int(p is not None and p < 0.05)
            for test, (_, hit) in scenario(effect_rng, True).items():
                if hit is not None:
                    covered.setdefault(test, []).append(hit)
        for test, count in rejected.items():
            hits = covered.get(test)
            rows.append(Calibration(test, sims, count / sims, float(np.mean(hits)) if hits else None))
    return rows
