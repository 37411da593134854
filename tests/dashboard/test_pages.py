"""The Experiments, Overview and Metrics pages on a seeded Postgres: the numbers shown are the analysis
snapshot's and the SQL aggregates; the charts' specs; the words the pages build from a snapshot."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analysis import display
from analysis.decision import CHANCE_OF_DECISION
from analysis.rule_mde import mde_words
from analysis.summary import health_name, results
from dashboard import charts
from dashboard.queries import ArmRow
from dashboard.snapshot import VERDICT_LABELS, parse_snapshot
from dashboard.views.common import md_escape
from dashboard.views.metrics import effects_frame
from dashboard.views.overview import arms_sentence, power_frame, power_words
from tests.support.dashboard_seed import PLAN, no_exception, store_snapshot

pytestmark = pytest.mark.postgres


def _close(a: object, b: object) -> bool:
    if b is None:
        return a is None or (isinstance(a, float) and math.isnan(a))
    return (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    )


def test_experiments_page_lists_verdict_status_progress_and_spend(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test()
    no_exception(at)
    frame = at.dataframe[0].value
    # what a product manager looks for first is on the left, so it shows at 1280 px
    columns = ["id", "experiment", "verdict", "status", "prompts", "progress", "spend"]
    assert list(frame.columns[:7]) == columns
    row = frame.iloc[0]
    assert row["experiment"] == "checkout-assistant-v2"
    assert row["status"] == "running"
    assert row["candidates"] == "model-b"  # the control (model-a) is on the Overview
    assert row["prompts"] == f"{seeded.replays // 2} of 400"
    spent = sum(seeded.cost.values())
    assert row["spend"] == f"{display.money(spent)} of $5.00 ({display.percent(spent / 5.0)})"
    assert row["errors"] == seeded.errors
    computed = seeded.analysis["verdict"]
    assert computed["verdict"] != "ship"  # a verdict that names no arm reads as its label alone
    assert row["verdict"] == VERDICT_LABELS[computed["verdict"]]
    doc = copy.deepcopy(seeded.analysis)
    doc["verdict"] |= {"verdict": "ship", "recommended": "cand"}
    store_snapshot(seeded.url, seeded.experiment_id, doc)
    st.cache_data.clear()
    row = app_test().dataframe[0].value.iloc[0]
    assert row["verdict"] == "Ship cand"  # read from the JSON in SQL; Ship names the arm to switch to


def test_overview_shows_verdict_reasons_health_and_power(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/overview.py")
    no_exception(at)
    verdict = seeded.analysis["verdict"]
    res = results(seeded.analysis, PLAN)
    shown = [
        e.value for e in [*at.success, *at.error, *at.info, *at.warning] if e.value.startswith("**Verdict: ")
    ]
    assert shown == [f"**Verdict: {VERDICT_LABELS[verdict['verdict']]}**  \n{md_escape(res.headline)}"]
    computed = [c.value for c in at.caption if c.value.startswith("Computed ")]
    n = f"{seeded.analysis['n_requests']:,}"
    assert len(computed) == 1, computed
    assert re.fullmatch(rf"Computed \d\d [A-Z][a-z]{{2}} \d{{4}} \d\d:\d\d UTC on {n} prompts\.", computed[0])
    markdown = " ".join(m.value for m in at.markdown)
    assert res.reasons
    for reason in res.reasons:
        assert f"- {md_escape(reason)}" in markdown
    texts = [t.value for t in at.text]
    for reason in verdict["reasons"]:  # the rule's exact words, in the engineers' expander
        assert f"• {reason}" in texts
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Prompts analysed"] == f"{seeded.analysis['n_requests']:,}"
    assert metrics["Planned sample"] == "400"
    assert metrics["Recommended"] == (verdict["recommended"] or "none")
    helps = {m.label: m.help for m in at.metric}  # the chance the verdict's own reason promises
    assert (
        helps["More prompts needed"]
        == f"Prompts still needed for {CHANCE_OF_DECISION}, from today's effects."
    )
    if verdict["verdict"] == "keep_running":
        assert metrics["Estimated time to decision"].startswith("≈")  # 60 replays finished in the last hour
    else:
        assert metrics["Estimated time to decision"] == "decided"
    table = at.table[0].value
    checks = {k["name"]: k["status"] for c in verdict["candidates"] for k in c["checks"]}
    # st.table renders Markdown, so its cells are escaped
    assert list(table["Metric"][:2]) == [md_escape("Judge score (goal)"), md_escape("Error rate (guardrail)")]
    shown_status = {"pass": "✓ pass", "fail": "✗ fail", "pending": "○ not yet"}
    assert list(table["Status"][:2]) == [shown_status[checks["primary:judge_score"]],
                                         shown_status[checks["guardrail:error"]]]  # fmt: skip
    for column in ("Control", "Candidate", "Change", "95 % interval", "Allowed"):
        for cell in table[column]:
            assert not re.search(r"\d", cell) or re.search(r"\$|%|ms|points|pp|prompts", cell), (column, cell)
    health = at.table[-1].value  # static, so 'detail' wraps; its cells are escaped Markdown
    checks_doc = seeded.analysis["health"]["checks"]
    assert list(health["check"]) == [md_escape(health_name(c["name"])) for c in checks_doc]
    assert list(health["detail"]) == [md_escape(c["detail"]) for c in checks_doc]
    assert all(len(p) <= 12 for p in health["p"])
    power = at.dataframe[0].value
    assert list(power["pairs"]) == [f"{c['n']:,}" for c in seeded.analysis["comparisons"]]
    # the MDE of the plan's own test (always-valid: sequential is the default), now and at the planned 400
    judge = next(c for c in seeded.analysis["comparisons"] if c["metric"] == "judge_score")
    assert (judge["mde_test"], judge["mde_planned_n"]) == ("always-valid", 400)
    row = list(power["metric"]).index(display.metric_name("judge_score") + " (goal)")
    assert power["MDE now"][row] == display.points(judge["mde"])
    assert power["MDE at planned n (approx.)"][row] == display.points(judge["mde_planned"])
    captions = [c.value for c in at.caption]
    assert md_escape(mde_words("always-valid", 400)) in captions


def test_overview_of_an_invalid_analysis_says_fix_the_data_first(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    doc = copy.deepcopy(seeded.analysis)
    doc["health"]["passed"] = False
    doc["health"]["checks"].append(
        {"name": "aa_noise_floor", "passed": False, "p_value": 1e-9, "detail": "the A/A arms differ"}
    )
    doc["verdict"] |= {"verdict": "invalid", "recommended": None, "reasons": [
        "health check aa_noise_floor failed: the A/A arms differ; check the A/A setup"]}  # fmt: skip
    store_snapshot(seeded.url, seeded.experiment_id, doc)
    at = app_test("views/overview.py")
    no_exception(at)
    banner = [w.value for w in at.warning if w.value.startswith("**Verdict: ")]
    assert banner == [
        "**Verdict: Invalid: fix the data first**  \n"
        + md_escape("Invalid, fix the data first: the A/A copy of the control disagrees with the control, "
                    "so the setup is broken.")
    ]  # fmt: skip
    assert any(md_escape("What to do: check the A/A setup") in m.value for m in at.markdown)
    assert any(w.value.startswith(f"A health check failed ({md_escape('A/A check')}") for w in at.warning)


def test_metrics_page_shows_every_effect_quantile_and_cost(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/metrics.py")
    no_exception(at)
    effects = at.dataframe[0].value
    comparisons = seeded.analysis["comparisons"]
    assert list(effects["metric"]) == [display.metric_name(c["metric"]) for c in comparisons]
    assert list(effects["pairs"]) == [f"{c['n']:,}" for c in comparisons]
    assert list(effects["change"]) == [display.change_text(c["kind"], c["estimate"]) for c in comparisons]
    assert list(effects["p (adjusted)"]) == [display.p_value(c["p_adjusted"]) for c in comparisons]
    assert all(len(p) <= 10 for p in [*effects["p"], *effects["p (adjusted)"]])
    # the tests' long names are in an expander, once per metric: the grid fits 1280 px
    assert "test" not in effects.columns
    tests = at.dataframe[1].value
    assert list(tests.itertuples(index=False, name=None)) == list(
        dict.fromkeys((display.metric_name(c["metric"]), c["test"]) for c in comparisons)
    )
    quantiles = at.dataframe[2].value
    expected = [q for c in comparisons for q in c["quantiles"] if q["supported"]]
    assert len(quantiles) == len(expected) > 0 and "note" not in quantiles.columns
    assert list(quantiles["difference"]) == [display.ms(q["estimate"], sign="always") for q in expected]
    reasons = {q["reason"] for c in comparisons for q in c["quantiles"] if not q["supported"]}
    assert reasons and [c.value for c in at.caption if c.value.startswith("Not reported: ")] == [
        "Not reported: " + "; ".join(md_escape(r) for r in sorted(reasons)) + "."
    ]
    cost = at.dataframe[3].value.set_index(["arm", "token_class"])
    for arm, classes in seeded.tokens.items():
        for token_class, total in classes.items():
            assert cost.loc[(arm, token_class), "tokens"] == total
    assert _close(cost.loc[("ctrl", "output"), "usd"], seeded.tokens["ctrl"]["output"] * 5e-6)
    # a forest plot per metric, two ECDFs and the cost bars
    charts = at.get("vega_lite_chart")
    assert len(charts) == len({c["metric"] for c in comparisons}) + 3


def test_forest_plots_give_every_candidate_its_own_row_and_show_no_effect() -> None:
    """The Vega-Lite spec: a step of ROW_HEIGHT px per candidate (a fixed height let Streamlit squeeze two
    labels onto one line), an axis title in the metric's unit, the no-effect value inside the domain."""
    rows = [charts.ForestRow("haiku", -24.0, -26.0, -23.0, "better", "-24 %"),
            charts.ForestRow("fast", 15.0, 12.0, 17.0, "worse", "+15 %")]  # fmt: skip
    spec = charts.forest_plot(rows, title="Latency", axis="change in %", null=0.0).to_dict()
    assert spec["height"] == {"step": charts.ROW_HEIGHT} and charts.ROW_HEIGHT >= 24
    interval = spec["layer"][1]["encoding"]
    assert interval["x"]["axis"]["title"] == "change in %"
    assert interval["y"]["axis"]["labelLimit"] >= 150
    low, high = interval["x"]["scale"]["domain"]
    assert low < -26.0 and high > 17.0 and low < 0.0 < high
    assert spec["layer"][0]["mark"]["strokeDash"]  # the dashed no-effect rule


def test_timing_axes_label_1_2_5_per_decade_in_ms_then_seconds() -> None:
    # a log axis' default labels every 1-9 step: 2,000 3,000 4,000 5,000 ran into one another
    assert charts.log_ticks([180.0, 4_700.0]) == [100, 200, 500, 1_000, 2_000, 5_000]
    assert charts.log_ticks([3.0, 90_000.0]) == [10, 100, 1_000, 10_000, 100_000]  # at most 8 labels
    spec = charts.ecdf_chart({"ctrl": [180.0, 4_700.0]}, [0.0, 1.0], "Latency").to_dict()
    axis = spec["encoding"]["x"]["axis"]
    assert axis["values"] == [100, 200, 500, 1_000, 2_000, 5_000] and "' s'" in axis["labelExpr"]


def test_ecdf_quantiles_from_sql_match_numpy(seeded: Any) -> None:
    from dashboard import data

    grid = (0.1, 0.5, 0.9)
    got = data.latency_quantiles(seeded.url, seeded.experiment_id, seeded.replays, grid)["ttft_ms"]
    for arm, values in seeded.ttft.items():
        assert np.allclose(got[arm], np.quantile(values, grid))  # numpy's default = percentile_cont


def test_ecdf_sample_stays_close_at_large_counts(seeded: Any) -> None:
    from dashboard import data

    grid = (0.25, 0.5, 0.75)
    # pretend the experiment is big: a 40 % Bernoulli sample of the seeded rows
    got = data.latency_quantiles(seeded.url, seeded.experiment_id, int(data.ECDF_SAMPLE_ROWS / 0.4), grid)
    for arm, values in seeded.ttft.items():
        exact = np.quantile(values, grid)
        assert not np.allclose(got["ttft_ms"][arm], exact)  # it did sample
        assert np.allclose(got["ttft_ms"][arm], exact, rtol=0.35)


def test_the_overview_names_the_model_behind_each_arm() -> None:
    arms = [ArmRow(1, "control", "control", "anthropic", "sim-sonnet"),
            ArmRow(2, "haiku", "candidate", "anthropic", "sim-haiku"),
            ArmRow(3, "fast", "candidate", "openai", "sim-flash"),
            ArmRow(4, "control-aa", "aa", "anthropic", "sim-sonnet")]  # fmt: skip
    assert arms_sentence(arms) == (
        f"Control: **control** ({md_escape('anthropic sim-sonnet')}) · candidates: **haiku** "
        f"({md_escape('anthropic sim-haiku')}), **fast** ({md_escape('openai sim-flash')}) · "
        f"A/A copy of the control: **{md_escape('control-aa')}**"
    )
    assert arms_sentence(arms[:1]) == ""  # nothing to compare


def test_a_preference_reads_as_a_share_of_prompts_not_a_change() -> None:
    comparison = {"metric": "pref_preference", "kind": "preference", "candidate": "cand", "n": 240,
                  "estimate": 0.31, "ci_low": 0.24, "ci_high": 0.37, "null_value": 0.5}  # fmt: skip
    doc = {"comparisons": [comparison]}
    snap = parse_snapshot(doc, computed_at=datetime.now(UTC), n_requests=240)
    row = effects_frame(snap).iloc[0]
    assert (row["change"], row["95 % interval"]) == ("31 % preferred", "24 to 37 %")


def test_the_power_table_reads_the_rules_mde_and_says_when_a_snapshot_predates_it() -> None:
    """A snapshot written before the MDE followed the plan (no mde_test) keeps the old √n scaling and says
    its MDE is a single look's; a new one shows the analysis' MDE at the planned sample, with roles."""
    row = {"metric": "judge_score", "candidate": "b", "kind": "mean", "n": 100, "mde": 0.4}
    old = parse_snapshot(
        {"n_requests": 100, "comparisons": [row]}, computed_at=datetime.now(UTC), n_requests=100
    )
    frame = power_frame(old, 400)
    assert list(frame["MDE at planned n (approx.)"]) == [display.points(0.2)]
    assert power_words(old).startswith("MDE of a single-look two-sided test: the decision rule may need")
    new_row = {**row, "mde_test": "always-valid", "mde_planned": 0.3, "mde_planned_n": 400}
    new = parse_snapshot({"n_requests": 100, "comparisons": [new_row]}, computed_at=datetime.now(UTC),
                         n_requests=100)  # fmt: skip
    frame = power_frame(new, 400, {"primary_metric": "judge_score"})
    assert list(frame["metric"]) == [display.metric_name("judge_score") + " (goal)"]
    assert list(frame["MDE at planned n (approx.)"]) == [display.points(0.3)]
    assert power_words(new) == mde_words("always-valid", 400)
