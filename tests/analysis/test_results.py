"""The results table and the verdict in plain words (`analysis.results`, `analysis.summary`,
`analysis.routing_text`), on documents the analysis engine and the decision rule compute from known data."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from analysis.analyze import analyze_table
from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.document import analysis_document
from analysis.plan import DecisionPlan
from analysis.ranking import pairwise_from_table, rank_arms
from analysis.routing_text import mix_rows, risk_sentences, route_rows, saving_sentence
from analysis.summary import results
from tests.support.analysis_documents import ROUTING

PLAN: dict[str, Any] = {
    "primary_metric": "cost_usd",
    "primary_direction": "lower_is_better",
    "guardrails": [
        {"metric": "quality", "margin": 0.5, "relative": False, "direction": "higher_is_better"},
        {"metric": "error_rate", "margin": 0.02, "relative": False},
        {"metric": "latency", "margin": 0.25},
    ],
    "min_sample": 100,
    "max_sample": 400,
}
JARGON = ("aa_noise_floor", "Holm", "pref_", "guardrail:", "primary:", "cost_usd", "error_rate", "+0 to +0")


def _document(quality_drop: float, *, n: int = 400, aa_shift: float = 0.0, seed: int = 7) -> dict[str, Any]:
    """Control, a candidate 60 % cheaper and 20 % faster that loses `quality_drop` judge points, an A/A copy;
    no replay fails in any arm."""
    rng = np.random.default_rng(seed)
    arms = ("ctrl", "cand", "aa")
    base = rng.normal(8.0, 1.0, n)
    quality = np.column_stack(
        [base, base - quality_drop + rng.normal(0, 0.6, n), base + aa_shift + rng.normal(0, 0.6, n)]
    )
    cost = np.abs(rng.normal(0.0017, 0.0003, n))
    cost = np.column_stack([cost, cost * 0.4, cost * rng.normal(1.0, 0.01, n)])
    latency = np.exp(rng.normal(6.7, 0.3, n))
    latency = np.column_stack(
        [latency, latency * 0.8 * np.exp(rng.normal(0, 0.1, n)), latency * np.exp(rng.normal(0, 0.1, n))]
    )
    table = ExperimentTable(
        request_ids=tuple(f"r{i}" for i in range(n)),
        arms=arms,
        metrics=(
            MetricColumn("error", "binary", np.zeros((n, 3))),
            MetricColumn("latency_ms", "latency", latency),
            MetricColumn("cost_usd", "cost", cost),
            MetricColumn("quality", "mean", quality.round(1)),
        ),
        clusters=None,
        covariate=None,
    )
    analysis = analyze_table(table, control="ctrl", alpha=0.05, adjust="holm", aa_arm="aa")
    doc, _ = analysis_document(
        analysis,
        DecisionPlan.from_dict(PLAN),
        rank_arms(table.arms, "ctrl", pairwise_from_table(table, "ctrl")),
    )
    return doc


def _no_jargon(texts: list[str]) -> None:
    for text in texts:
        for word in JARGON:
            assert word not in text, (word, text)


def test_dont_ship_says_which_guardrail_broke_and_by_how_much() -> None:
    doc = _document(quality_drop=1.0)
    assert doc["verdict"]["verdict"] == "dont_ship"
    res = results(doc, PLAN)
    assert res.headline.startswith("Don't switch: Quality drops ")
    assert re.search(r"drops 1\.\d\d points with cand \(allowed 0\.50 points\)", res.headline), res.headline
    assert res.recommended is None and res.statuses == (("cand", "fail"),)
    assert any("Quality drops" in r and "more than the 0.50 points allowed" in r for r in res.reasons)
    _no_jargon([res.headline, *res.reasons])
    assert res.rule_reasons == tuple(doc["verdict"]["reasons"])  # the exact text stays for engineers


def test_rows_carry_units_and_zero_errors_read_as_no_errors() -> None:
    res = results(_document(quality_drop=1.0), PLAN)
    rows = {r.name: r for r in res.rows}
    assert list(rows) == ["Cost per request", "Quality", "Error rate", "Latency"]
    assert [r.role for r in res.rows] == ["goal", "guardrail", "guardrail", "guardrail"]
    cost, quality, errors, latency = rows.values()
    assert cost.change.startswith("-$0.00") and cost.change_pct == "-60 %" and cost.allowed == "must improve"
    assert cost.control.startswith("$0.0017")
    assert (
        quality.change.endswith(" points") and quality.allowed == "-0.50 points" and quality.status == "fail"
    )
    assert (errors.change, errors.interval) == ("no change", "no errors in 400 prompts")
    assert errors.allowed == "+2.0 pp" and errors.status == "pass"
    assert (
        latency.change_pct.startswith("-") and latency.change.endswith(" ms") and latency.allowed == "+25 %"
    )
    number = re.compile(r"\d")
    for row in res.rows:
        for cell in (row.control, row.value, row.change, row.interval, row.allowed):
            if number.search(cell):
                assert re.search(r"\$|%|ms|points|pp|prompts", cell), (row.name, cell)


def test_ship_names_the_candidate_and_the_saving() -> None:
    doc = _document(quality_drop=0.0)
    assert doc["verdict"]["verdict"] == "ship", doc["verdict"]["reasons"]
    res = results(doc, PLAN)
    assert res.recommended == "cand"
    assert res.headline.startswith("Switch to cand: 60 % cheaper; quality ")
    assert "(allowed 0.50 points)" in res.headline
    assert any(r.startswith("cand: no other metric got worse") for r in res.reasons)
    _no_jargon([res.headline, *res.reasons])


def test_invalid_says_what_to_fix_and_not_that_the_candidate_is_worse() -> None:
    doc = _document(quality_drop=0.0, aa_shift=1.5)
    assert doc["verdict"]["verdict"] == "invalid"
    res = results(doc, PLAN)
    assert res.headline.startswith("Invalid, fix the data first: the A/A copy of the control disagrees")
    assert "What to do:" in res.reasons[0]
    assert res.reasons[-1] == "This says nothing about whether the candidates are better or worse."
    _no_jargon([res.headline])


def test_keep_running_below_the_minimum_sample() -> None:
    res = results(_document(quality_drop=0.0, n=60), PLAN)
    assert res.verdict == "keep_running"
    assert res.headline == "Keep running: 60 of the 100 prompts the plan needs before any decision."


def test_without_a_plan_rows_have_no_status() -> None:
    doc = _document(quality_drop=1.0)
    doc.pop("verdict")
    res = results(doc)
    assert res.verdict is None and res.headline.startswith("No verdict")
    assert res.rows and all(r.status == "" and r.status_label == "—" for r in res.rows)


def test_no_saving_is_claimed_when_every_segment_stays_on_the_control() -> None:
    no_saving = {**ROUTING["saving"], "per_request_usd": -0.0, "ci_low": None, "ci_high": None}
    segments = [{**s, "arm": "ctrl"} for s in ROUTING["segments"]]
    all_control = {**ROUTING, "segments": segments, "saving": no_saving}
    said = (
        "No segment moves off the control: all traffic stays on it, so users see no change and nothing is "
        "saved."
    )
    assert saving_sentence(all_control) == said
    assert risk_sentences(all_control) == []  # said once, as the routing's headline


def test_routing_in_plain_words() -> None:
    assert saving_sentence(ROUTING) == (
        "Projected saving: $0.00029 per request ($291 per million requests; 18 % of the control's cost); "
        "95 % interval $0.00022 to $0.00036, measured on prompts the routing was not chosen on "
        "(cross-fitted)."
    )
    rows = route_rows(ROUTING)
    assert [(r.segment, r.share, r.arm, r.status) for r in rows] == [
        ("support-bot/faq", "28 %", "cand", "moves"),
        ("code/refactor", "16 %", "ctrl", "stays"),
        ("search/summarise", "2.7 %", "ctrl", "too small to judge"),
    ]
    assert rows[0].p_adjusted == "< 0.001" and rows[1].why == "cand: Quality fails"
    risk = risk_sentences(ROUTING)
    assert (
        risk[0]
        == "28 % of the captured traffic moves (support-bot/faq → cand); the rest stays on the control."
    )
    assert "Too small to judge, kept on the control: search/summarise." in risk
    doc = {**_document(quality_drop=0.0), "routing": ROUTING}
    mix = {r.name: r for r in mix_rows(doc, PLAN)}
    assert mix["Quality"].interval == "-0.09 to +0.06 points"
    assert mix["Error rate"].interval == "no errors in 1,000 prompts"
    _no_jargon([*risk, *(r.why for r in rows)])


def test_the_control_of_a_preference_reads_as_a_tie() -> None:
    """The control judged against itself is a tie: '50 % (a tie)' ('(even)' read as a riddle), for the
    dashboard and the report alike."""
    rng = np.random.default_rng(3)
    n = 200
    preference = np.column_stack([np.full(n, np.nan), rng.choice([0.0, 0.5, 1.0], n, p=[0.5, 0.2, 0.3])])
    table = ExperimentTable(
        tuple(f"r{i}" for i in range(n)), ("ctrl", "cand"),
        (MetricColumn("pref_judge", "preference", preference),), None, None,
    )  # fmt: skip
    doc, _ = analysis_document(analyze_table(table, control="ctrl", alpha=0.05, adjust="holm"), None, None)
    (row,) = [r for r in results(doc).rows if r.metric == "pref_judge"]
    assert row.control == "50 % (a tie)"
