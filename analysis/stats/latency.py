"""TTFT and latency: ratio of geometric means (failures at the timeout) and quantile differences."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from analysis.stats.distributions import FloatArray
from analysis.stats.paired import mean_inference
from analysis.stats.power import mde_from_se
from analysis.stats.quantiles import DEFAULT_QUANTILES, QuantileMethod, quantile_differences
from analysis.stats.results import DEFAULT_INFERENCE, Inference, MetricComparison, TestResult


def _exp(value: float | None) -> float | None:
    return None if value is None else math.exp(value)


def geometric_mean_ratio(
    control: FloatArray, candidate: FloatArray, inference: Inference = DEFAULT_INFERENCE
) -> TestResult:
    """Ratio of geometric means candidate/control: paired t on log ratios, back-transformed."""
    on_log = mean_inference(np.log(candidate) - np.log(control), inference, test="paired t on log ratios")
    return ratio_from_log(on_log)


def ratio_from_log(on_log: TestResult) -> TestResult:
    """A t result on log ratios as a ratio (estimate and interval exponentiated, null 1; SE stays on log
    scale, where the sequential and harm checks work)."""
    return TestResult(
        on_log.test,
        on_log.n,
        _exp(on_log.estimate),
        _exp(on_log.ci_low),
        _exp(on_log.ci_high),
        on_log.p_value,
        statistic=on_log.statistic,
        df=on_log.df,
        null_value=1.0,
        se=on_log.se,
        notes=on_log.notes,
    )


def compare_latency(
    control: FloatArray,
    candidate: FloatArray,
    inference: Inference = DEFAULT_INFERENCE,
    *,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    quantile_method: QuantileMethod = "asymptotic",
    seed: int = 0,
    failure_value: float | None = None,
) -> MetricComparison:
    """Latency over complete pairs; +∞ marks a failed request.

    A failed request counts at `failure_value` (the replay timeout) in the ratio, or at the slowest
    latency observed when no timeout is known, and as +∞ in the quantiles: a candidate that fails on its
    slow requests must not look faster for it (leaving failures out measured a candidate 5 % slower whose
    slowest 10 % fail at 1.02). The ratio over pairs where both succeeded stays as a secondary line.
    """
    both_ok = np.isfinite(control) & np.isfinite(candidate)
    ok_control, ok_candidate = control[both_ok], candidate[both_ok]
    survivors = geometric_mean_ratio(ok_control, ok_candidate, inference.subset(both_ok))
    n_failed = int(np.count_nonzero(~np.isfinite(control)) + np.count_nonzero(~np.isfinite(candidate)))
    finite = np.concatenate((control[np.isfinite(control)], candidate[np.isfinite(candidate)]))
    fill = failure_value if failure_value is not None else (float(finite.max()) if finite.size else None)
    robustness: tuple[TestResult, ...] = ()
    if n_failed == 0 or fill is None or not fill > 0:
        primary, filled_control, filled_candidate = survivors, ok_control, ok_candidate
        if n_failed:
            left_out = f"{control.size - survivors.n} pairs with a failed side left out of the ratio"
            primary = replace(primary, notes=(*primary.notes, left_out))
    else:
        filled_control = np.where(np.isfinite(control), control, fill)
        filled_candidate = np.where(np.isfinite(candidate), candidate, fill)
        counted = geometric_mean_ratio(filled_control, filled_candidate, inference)
        source = "the replay timeout" if failure_value is not None else "the slowest latency observed"
        primary = replace(
            counted,
            test=counted.test + ", failures at the timeout",
            notes=(*counted.notes, f"{n_failed} failed replays counted at {fill:g} ms ({source})"),
        )
        robustness = (replace(survivors, test=survivors.test + ", survivors only (both succeeded)"),)
    n = primary.n
    alpha, clusters = inference.alpha, inference.clusters
    log_mde = mde_from_se(primary.se, primary.df, alpha=alpha)
    return MetricComparison(
        kind="latency",
        primary=primary,
        control_mean=float(np.exp(np.log(filled_control).mean())) if n else None,
        candidate_mean=float(np.exp(np.log(filled_candidate).mean())) if n else None,
        robustness=robustness,
        quantiles=quantile_differences(
            control,
            candidate,
            quantiles=quantiles,
            alpha=alpha,
            clusters=clusters,
            method=quantile_method,
            seed=seed,
        ),
        mde=_exp(log_mde),
        clustered=clusters is not None,
        cuped="CUPED" in primary.test,
    )
