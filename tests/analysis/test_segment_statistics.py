"""Segment comparisons from sufficient statistics equal the straightforward computation: `compare_arms` on
each segment's rows alone (the row-level engine, itself checked against R in test_reference_values.py)."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from analysis.analyze import compare_arms
from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.segments import SegmentDimension, SegmentEffect, segment_effects, segment_json, subset_rows
from analysis.stats import results

ARMS = ("control", "cand", "aa", "cand2")
CANDIDATES = ("cand", "cand2")
# The last segment has no failed replay at all; "tiny" is below min_n.
SIZES = {"a": 900, "b": 700, "c": 400, "tiny": 12, "clean": 300}


def _table(rng: np.random.Generator, clusters: str) -> tuple[ExperimentTable, SegmentDimension]:
    labels = [label for label, size in SIZES.items() for _ in range(size)]
    rng.shuffle(labels)
    n, k = len(labels), len(ARMS)
    clean = np.array([label == "clean" for label in labels])[:, None]
    failed = (rng.random((n, k)) < 0.06) & ~clean
    judge = rng.integers(1, 11, (n, k)).astype(float) + np.array([0, 0.4, 0, -0.3])
    judge[np.array(labels) == "c"] += 3.0  # its worst score is not the others'
    judge[failed | (rng.random((n, k)) < 0.03)] = np.nan  # failed answers, and a few never scored
    check = (rng.random((n, k)) < np.array([0.7, 0.75, 0.7, 0.6])).astype(float)
    check[failed] = np.nan
    ttft = rng.lognormal(6.0, 0.5, (n, k)) * np.array([1.0, 0.9, 1.0, 1.1])
    ttft[failed] = np.inf
    cost = rng.gamma(3.0, 0.001, (n, k)) * np.array([1.0, 0.5, 1.0, 0.8])
    cost[rng.random((n, k)) < 0.02] = np.nan
    preference = np.full((n, k), np.nan)
    preference[:, 1:] = rng.choice([0.0, 0.5, 1.0], (n, k - 1), p=[0.3, 0.2, 0.5])
    preference[rng.random((n, k)) < 0.1] = np.nan
    metrics = (
        MetricColumn("error", "binary", failed.astype(float)),
        MetricColumn("judge", "mean", judge),
        MetricColumn("check_pass", "binary", check),
        MetricColumn("ttft_ms", "latency", ttft),
        MetricColumn("cost_usd", "cost", cost),
        MetricColumn("pref_judge", "preference", preference),
    )
    conversations = rng.integers(0, n // 3, n)
    labels_of = {
        "none": None,
        "one-way": conversations,
        "two-way": np.column_stack([conversations, rng.integers(0, n // 4, n)]),
    }
    covariate = rng.normal(100.0, 20.0, n)  # present, but segments are never given its population mean
    table = ExperimentTable(
        tuple(f"r{i}" for i in range(n)), ARMS, metrics, labels_of[clusters], covariate
    )  # fmt: skip
    dim = SegmentDimension.from_labels("route", labels, {label: {"route": label} for label in SIZES})
    return table, dim


def _same_test(mine: results.TestResult | None, reference: results.TestResult | None) -> None:
    assert (mine is None) == (reference is None)
    if mine is None or reference is None:
        return
    for name in ("test", "n", "null_value"):
        assert getattr(mine, name) == getattr(reference, name), name
    for name in ("estimate", "ci_low", "ci_high", "p_value", "statistic", "df", "se"):
        _close(getattr(mine, name), getattr(reference, name), name)


def _close(mine: float | None, reference: float | None, what: str) -> None:
    if reference is None or (isinstance(reference, float) and math.isnan(reference)):
        assert mine is None or math.isnan(mine), what
        return
    assert mine == pytest.approx(reference, rel=1e-9, abs=1e-12), what


def _same_comparison(
    mine: results.MetricComparison, reference: results.MetricComparison, quantiles: bool
) -> None:
    assert (mine.kind, mine.clustered, mine.cuped) == (reference.kind, reference.clustered, reference.cuped)
    _same_test(mine.primary, reference.primary)
    _same_test(mine.relative, reference.relative)
    for name in ("control_mean", "candidate_mean", "mde"):
        _close(getattr(mine, name), getattr(reference, name), name)
    if quantiles:
        assert len(mine.quantiles) == len(reference.quantiles) == 3
        for q_mine, q_ref in zip(mine.quantiles, reference.quantiles, strict=True):
            for field in fields(q_ref):
                value, expected = getattr(q_mine, field.name), getattr(q_ref, field.name)
                if isinstance(expected, float):
                    _close(value, expected, f"quantile {field.name}")
                else:
                    assert value == expected, field.name
    else:
        assert mine.quantiles == ()


@pytest.mark.parametrize(
    ("clusters", "timeout_ms"), [("none", None), ("one-way", None), ("two-way", None), ("one-way", 5000.0)]
)
def test_every_segment_equals_compare_arms_on_its_own_rows(clusters: str, timeout_ms: float | None) -> None:
    table, dim = _table(np.random.default_rng(7), clusters)
    effects = segment_effects(
        table, [dim], control="control", alpha=0.05, aa_arm="aa", min_n=30,
        quantile_metrics={"route": ["ttft_ms"]}, failure_latency_ms=timeout_ms,
    )  # fmt: skip
    assert len(effects) == len(SIZES) * len(table.metrics) * len(CANDIDATES)
    for effect in effects:
        rows = dim.codes == dim.segments.index(effect.segment)
        sub = subset_rows(table, rows)
        metric = next(m for m in sub.metrics if m.name == effect.metric)
        cand = ~np.isnan(metric.values[:, ARMS.index(effect.candidate)])
        if metric.kind != "preference":
            cand &= ~np.isnan(metric.values[:, 0])
        assert effect.n == int(np.count_nonzero(cand))
        if effect.segment == "tiny":
            assert (effect.status, effect.comparison) == ("too_small", None)
            continue
        assert effect.status == "tested" and effect.comparison is not None
        reference = compare_arms(
            sub, metric, "control", effect.candidate, alpha=0.05, failure_latency_ms=timeout_ms
        )
        _same_comparison(effect.comparison.result, reference, quantiles=metric.name == "ttft_ms")
        row = segment_json(effect)
        assert row["estimate"] == pytest.approx(reference.primary.estimate, rel=1e-9)
        assert row["kind"] == reference.kind and row["null_value"] == reference.primary.null_value


def test_failures_count_at_each_segments_own_worst_score_and_at_the_replay_timeout() -> None:
    table, dim = _table(np.random.default_rng(11), "none")
    effects = segment_effects(
        table, [dim], control="control", alpha=0.05, aa_arm="aa", min_n=30, failure_latency_ms=60_000.0
    )
    tests = {(e.segment, e.metric, e.candidate): e.comparison.result.primary.test
             for e in effects if e.comparison is not None}  # fmt: skip
    assert tests["a", "judge", "cand"] == "paired t, failures at the worst score"
    assert tests["a", "check_pass", "cand"] == "exact McNemar; Newcombe interval, failures at the worst score"
    assert tests["a", "ttft_ms", "cand"] == "paired t on log ratios, failures at the timeout"
    assert tests["clean", "judge", "cand"] == "paired t"
    assert tests["clean", "ttft_ms", "cand"] == "paired t on log ratios"
    # the timeout, not the segment's slowest answer (~2 s), is what a failure costs
    slowest = segment_effects(table, [dim], control="control", alpha=0.05, aa_arm="aa", min_n=30)

    def ttft_ratio(found: tuple[SegmentEffect, ...]) -> float | None:
        (effect,) = [e for e in found if (e.segment, e.metric, e.candidate) == ("a", "ttft_ms", "cand")]
        assert effect.comparison is not None
        return effect.comparison.result.primary.estimate

    at_timeout, at_slowest = ttft_ratio(effects), ttft_ratio(slowest)
    assert at_timeout is not None and at_slowest is not None and at_timeout != pytest.approx(at_slowest)


@pytest.mark.parametrize("reduce", [np.fmax, np.fmin])
def test_group_extreme_is_the_nan_ignoring_reduction_per_group(reduce: np.ufunc) -> None:
    """Per group, what `reduce.at` on a NaN-filled array gives: NaN ignored, NaN for a group without rows or
    with NaN only, ±∞ kept when they are values."""
    from analysis.stats.grouped import Grouping, group_extreme

    rng = np.random.default_rng(7)
    n, size = 5000, 9  # group 7 has no rows, group 8 NaN only
    codes = rng.integers(0, 7, n)
    codes[:20] = 8
    values = rng.normal(size=n)
    values[rng.random(n) < 0.2] = np.nan
    values[:20] = np.nan
    values[codes == 3] = -np.inf
    values[np.flatnonzero(codes == 5)[:3]] = np.inf
    expected = np.full(size, np.nan)
    reduce.at(expected, codes, values)
    found = group_extreme(reduce, values, Grouping(codes, size))
    assert np.array_equal(found, expected, equal_nan=True)
    assert np.isnan(found[[7, 8]]).all()
