"""Effects per segment: too-small segments are listed and never tested; BH runs within metric × candidate."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.facts import RequestFacts
from analysis.segments import (
    SegmentDimension,
    SegmentEffectsRun,
    SegmentError,
    segment_dimensions,
    segment_effects,
)
from analysis.stats import adjust_p_values


def _table(labels: list[str], rng: np.random.Generator) -> ExperimentTable:
    n = len(labels)
    control = rng.normal(7.0, 1.0, n)
    shift = np.array([-1.5 if label == "hard" else 0.0 for label in labels])
    quality = np.column_stack([control, control + shift + rng.normal(0, 0.5, n)])
    cost = np.column_stack([rng.normal(0.01, 0.001, n), rng.normal(0.004, 0.001, n)])
    metrics = (MetricColumn("quality", "mean", quality), MetricColumn("cost_usd", "cost", cost))
    return ExperimentTable(tuple(f"r{i}" for i in range(n)), ("control", "cand"), metrics, None, None)


def test_a_segment_below_min_n_is_listed_as_too_small_and_not_tested() -> None:
    labels = ["easy"] * 80 + ["hard"] * 60 + ["tiny"] * 12
    table = _table(labels, np.random.default_rng(3))
    dim = SegmentDimension.from_labels("route", tuple(labels), {v: {"route": v} for v in set(labels)})
    effects = segment_effects(table, [dim], control="control", alpha=0.05, min_n=30)
    tiny = [e for e in effects if e.segment == "tiny"]
    assert {(e.metric, e.status, e.n, e.comparison, e.p_adjusted) for e in tiny} == {
        ("quality", "too_small", 12, None, None),
        ("cost_usd", "too_small", 12, None, None),
    }
    hard = next(e for e in effects if e.segment == "hard" and e.metric == "quality")
    assert hard.comparison is not None and hard.comparison.result.primary.ci_high is not None
    assert hard.comparison.result.primary.ci_high < -1.0
    easy = next(e for e in effects if e.segment == "easy" and e.metric == "quality")
    assert easy.comparison is not None and easy.comparison.result.primary.ci_low is not None
    assert easy.comparison.result.primary.ci_low < 0 < (easy.comparison.result.primary.ci_high or 0)


def test_bh_is_applied_across_segments_within_each_metric_and_candidate() -> None:
    labels = [f"s{i % 4}" for i in range(400)]
    table = _table(labels, np.random.default_rng(5))
    dims = [
        SegmentDimension.from_labels("route", tuple(labels), {v: {"route": v} for v in set(labels)}),
        SegmentDimension.from_labels(
            "half", tuple("a" if i < 200 else "b" for i in range(400)), {"a": {}, "b": {}}
        ),
    ]
    effects = segment_effects(table, dims, control="control", alpha=0.05, min_n=30)
    for metric in ("quality", "cost_usd"):
        family = [e for e in effects if e.metric == metric]
        assert len(family) == 6
        raw = [e.comparison.result.primary.p_value if e.comparison else None for e in family]
        assert [e.p_adjusted for e in family] == pytest.approx(adjust_p_values(raw, "bh"))


def test_labels_must_cover_every_request_and_min_n_is_sane() -> None:
    table = _table(["a"] * 40, np.random.default_rng(1))
    with pytest.raises(SegmentError, match="dimension 'route': expected 40 labels"):
        segment_effects(
            table, [SegmentDimension.from_labels("route", ("a",) * 39, {})], control="control", alpha=0.05
        )
    with pytest.raises(SegmentError, match="min_n: expected at least 2"):
        segment_effects(table, [], control="control", alpha=0.05, min_n=1)


def test_dimensions_from_request_facts() -> None:
    facts = [
        RequestFacts("bot", "faq", {"language": "de", "plan": "pro"}, 120, 1),
        RequestFacts("bot", None, {"plan": "free"}, 4500, 4),
        RequestFacts("search", "sum", {"plan": "pro"}, 600, 2),
    ]
    dims = {d.name: d for d in segment_dimensions(facts)}
    assert set(dims) == {"service", "route", "language", "tag:plan", "prompt_length", "turn"}
    assert dims["route"].labels == ("bot/faq", "bot/(none)", "search/sum")
    assert dims["route"].predicates["bot/(none)"] == {"service": "bot", "route": None}
    assert dims["language"].labels == ("de", "(none)", "(none)")
    assert dims["prompt_length"].labels == ("chars 0-199", "chars 4000+", "chars 200-999")
    assert dims["prompt_length"].predicates["chars 4000+"] == {"prompt_chars": {"min": 4000.0}}
    assert dims["turn"].labels == ("turn 1", "turn 3+", "turn 2")


def _forked_and_inline() -> None:
    """Run in a fresh process (one thread, so forking is allowed): the effects of three dimensions with two of
    them computed by a forked child equal those computed in one process, in the same order."""
    labels = [f"s{i % 4}" for i in range(400)]
    table = _table(labels, np.random.default_rng(5))
    dims = [
        SegmentDimension.from_labels(
            name, tuple(f"{name}{i % k}" for i in range(400)), {f"{name}{j}": {} for j in range(k)}
        )  # fmt: skip
        for name, k in (("route", 4), ("half", 2), ("third", 3))
    ]
    with SegmentEffectsRun(table, dims, control="control", alpha=0.05, min_n=30, fork=True) as run:
        assert run.forked
        split = run.effects()
    whole = segment_effects(table, dims, control="control", alpha=0.05, min_n=30)
    assert list(dict.fromkeys(e.dimension for e in split)) == ["route", "half", "third"]
    assert repr(split) == repr(whole)


def test_segments_computed_partly_in_a_forked_child_are_the_same_effects() -> None:
    code = "from tests.analysis.test_segments import _forked_and_inline as f; f(); print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]
