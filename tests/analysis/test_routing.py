"""Routing: the cheaper candidate gets only the segments where it holds; the saving CI covers the truth;
the exported routing table loads back and reproduces the recommendation; an experiment too small to route
still gets its verdict, and the routing says why it moves nothing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.document import routing_json
from analysis.experiment_analysis import analyze_experiment
from analysis.facts import RequestFacts
from analysis.plan import DecisionPlan
from analysis.routing import RoutingRecommendation, RoutingRule, recommend_routing
from analysis.routing_table import (
    RoutingTableError,
    read_routing_table,
    table_from_dict,
    table_from_recommendation,
    write_routing_table,
)
from analysis.routing_text import risk_sentences, saving_sentence
from analysis.segments import SegmentDimension, segment_effects
from shadowlab.db import create_engine
from tests.support.analysis_seed import seed_experiment

PLAN = DecisionPlan.from_dict(
    {
        "primary_metric": "cost_usd",
        "primary_direction": "lower_is_better",
        "guardrails": [
            {"metric": "quality", "margin": 0.5, "relative": False, "direction": "higher_is_better"}
        ],
        "planned_sample": 510,  # the experiment's size: the always-valid intervals are tightest there
    }
)
SIZES = {"easy": 300, "hard": 200, "tiny": 10}
COST_SAVING = 0.006  # control 0.010, candidate 0.004 per request
TRUE_SAVING = COST_SAVING * SIZES["easy"] / sum(SIZES.values())  # only the easy segment moves
MODELS = (("control", "anthropic", "big"), ("cheap", "anthropic", "small"))


def _experiment(
    seed: int, sizes: Mapping[str, int] = SIZES
) -> tuple[ExperimentTable, SegmentDimension, list[RequestFacts]]:
    rng = np.random.default_rng(seed)
    labels = [label for label, n in sizes.items() for _ in range(n)]
    n = len(labels)
    hard = np.array([label == "hard" for label in labels])
    control = rng.normal(7.0, 1.2, n)
    quality = np.column_stack([control, control - 2.0 * hard + rng.normal(0, 1.0, n)])
    cost = np.column_stack([rng.gamma(4, 0.0025, n), rng.gamma(4, 0.001, n)])
    table = ExperimentTable(
        tuple(f"r{i}" for i in range(n)), ("control", "cheap"),
        (MetricColumn("quality", "mean", quality), MetricColumn("cost_usd", "cost", cost)), None, None,
    )  # fmt: skip
    dim = SegmentDimension.from_labels(
        "route", tuple(labels), {v: {"service": "app", "route": v} for v in sizes}
    )
    facts = [RequestFacts("app", label, {}, 100, 1) for label in labels]
    return table, dim, facts


def _recommend(
    seed: int, sizes: Mapping[str, int] = SIZES
) -> tuple[RoutingRecommendation, list[RequestFacts]]:
    table, dim, facts = _experiment(seed, sizes)
    effects = segment_effects(table, [dim], control="control", alpha=0.05, min_n=30)
    return recommend_routing(table, dim, effects, PLAN, control="control", rule=RoutingRule()), facts


def _saving_interval(rec: RoutingRecommendation) -> tuple[float, float, float]:
    assert rec.saving is not None
    p = rec.saving.result.primary
    assert p.estimate is not None and p.ci_low is not None and p.ci_high is not None
    return -p.estimate, -p.ci_high, -p.ci_low


def test_only_the_easy_segment_goes_to_the_cheaper_candidate_and_the_saving_ci_covers_the_truth() -> None:
    rec, _ = _recommend(seed=11)
    routes = {s.segment: (s.arm, s.status) for s in rec.segments}
    assert routes == {
        "easy": ("cheap", "routed"),
        "hard": ("control", "control"),
        "tiny": ("control", "too_small"),
    }
    estimate, low, high = _saving_interval(rec)
    assert low < TRUE_SAVING < high
    assert estimate == pytest.approx(TRUE_SAVING, rel=0.1)
    assert any("moves off the control" in r and "easy → cheap" in r for r in rec.risk)
    assert {c.name: c.status for c in rec.mix} == {"guardrail:cost_usd": "pass", "guardrail:quality": "pass"}


def test_saving_interval_has_its_nominal_coverage() -> None:
    covered = 0
    runs = 200
    for seed in range(runs):
        rec, _ = _recommend(seed=1000 + seed)
        assert [s.arm for s in rec.segments] == ["cheap", "control", "control"]
        _, low, high = _saving_interval(rec)
        covered += low < TRUE_SAVING < high
    assert 0.91 <= covered / runs <= 0.99


def test_a_too_small_segment_is_never_recommended_even_when_the_candidate_is_better_there() -> None:
    table, dim, _ = _experiment(seed=2)
    effects = segment_effects(table, [dim], control="control", alpha=0.05, min_n=30)
    rec = recommend_routing(table, dim, effects, PLAN, control="control", rule=RoutingRule(min_n=30))
    tiny = next(s for s in rec.segments if s.segment == "tiny")
    assert (tiny.arm, tiny.status) == ("control", "too_small")
    assert "fewer than 30 pairs" in tiny.reason


def test_with_no_segment_big_enough_nothing_is_routed_and_the_routing_says_why() -> None:
    rec, _ = _recommend(seed=3, sizes={"easy": 12, "hard": 8})  # no segment reaches min_n (30)

    assert {s.segment: (s.arm, s.status) for s in rec.segments} == {
        "easy": ("control", "too_small"), "hard": ("control", "too_small"),
    }  # fmt: skip
    assert rec.risk == (
        "no routing (too few prompts per segment): every segment has fewer than 30 pairs to judge a "
        "candidate on, so all traffic stays on control",
    )
    assert saving_sentence(routing_json(rec)) == (
        "No routing: each segment has fewer than 30 prompts to judge on, so all traffic stays on the "
        "control; users see no change and nothing is saved."
    )
    assert risk_sentences(routing_json(rec)) == []  # said once, by the sentence above


def test_when_a_half_is_too_small_to_choose_a_routing_the_saving_is_measured_in_sample() -> None:
    # 44 prompts route "easy" on the whole sample; each cross-fitting half (~22) is below min_n
    rec, _ = _recommend(seed=11, sizes={"easy": 44, "tiny": 10})

    assert {s.segment: s.status for s in rec.segments} == {"easy": "routed", "tiny": "too_small"}
    assert rec.saving is not None and rec.saving_method == "in-sample"
    assert any("may be optimistic" in r for r in rec.risk)


@pytest.mark.postgres
@pytest.mark.parametrize("n", [6, 30])
def test_a_small_stored_experiment_gets_its_verdict_and_routing(pg_migrated: str, n: int) -> None:
    seed_experiment(pg_migrated, "small", n=n)  # 2 % failed replays: 30 prompts give < 30 pairs
    engine = create_engine(pg_migrated)
    try:
        with Session(engine) as session:
            report = analyze_experiment(session, "small", store=False)
    finally:
        engine.dispose()

    assert report.verdict == "keep_running"  # the plan's min_sample is 100
    assert report.routing is not None and report.routing.saving_method == "in-sample"
    assert all(s.arm == "control" for s in report.routing.segments)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_exported_routing_table_loads_back_and_reproduces_the_recommendation(
    tmp_path: Path, suffix: str
) -> None:
    rec, facts = _recommend(seed=11)
    table = table_from_recommendation(rec, "exp", MODELS)
    path = tmp_path / f"routing{suffix}"
    write_routing_table(table, path)
    loaded = read_routing_table(path)
    assert loaded == table
    by_segment = {s.segment: s.arm for s in rec.segments}
    for fact in facts:
        assert loaded.route(fact).arm == by_segment[str(fact.route)]
    assert loaded.route(RequestFacts("other-service", "x", {}, 10, 1)).model == "big"  # default: control
    assert loaded.route(facts[0]).model == "small"


def test_an_invalid_routing_table_names_the_key() -> None:
    with pytest.raises(RoutingTableError, match="key format: expected 'shadowlab.routing/v1'"):
        table_from_dict({"format": "v0"})
    bad = {"format": "shadowlab.routing/v1", "experiment": "e", "dimension": "route",
           "default": {"arm": "c", "provider": "p", "model": "m"},
           "rules": [{"segment": "s", "when": {"turn": {"min": "x"}}, "arm": "a", "provider": "p",
                      "model": "m", "status": "routed"}]}  # fmt: skip
    with pytest.raises(RoutingTableError, match=r"rules\[0\], when.turn: expected a string, null or"):
        table_from_dict(bad)
