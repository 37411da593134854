"""Every page on a seeded Postgres: the numbers shown are the analysis snapshot's and the SQL aggregates."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from analysis import display
from analysis.decision import CHANCE_OF_DECISION
from analysis.glossary import KINDS, METRICS, TERMS
from analysis.routing_text import route_rows, saving_sentence
from analysis.rule_mde import mde_words
from analysis.summary import health_name, results
from dashboard import charts
from dashboard.decisions import AGREEING, DecisionRecord
from dashboard.queries import ArmRow
from dashboard.snapshot import VERDICT_LABELS, parse_snapshot
from dashboard.views.common import md_escape
from dashboard.views.decide import history_frame
from dashboard.views.metrics import effects_frame
from dashboard.views.overview import arms_sentence, power_frame, power_words
from shadowlab import store
from shadowlab.budget import set_budget
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.models import AnalysisSnapshot
from tests.support.analysis_documents import ROUTING
from tests.support.dashboard_seed import PLAN

pytestmark = pytest.mark.postgres


def _close(a: object, b: object) -> bool:
    if b is None:
        return a is None or (isinstance(a, float) and math.isnan(a))
    return (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    )


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    problems = [e.value for e in at.error if not e.value.startswith("**")]  # a verdict box is not an error
    assert not problems, problems


def _store_snapshot(url: str, experiment_id: int, doc: dict[str, Any]) -> None:
    """A newer snapshot with `doc` (the pages read the latest)."""
    engine = create_engine(url)
    with session_scope(session_factory(engine)) as session:
        session.add(
            AnalysisSnapshot(experiment_id=experiment_id, n_requests=doc["n_requests"],
                             verdict=doc["verdict"]["verdict"], analysis=doc, computed_at=datetime.now(UTC))
        )  # fmt: skip
    engine.dispose()


def test_experiments_page_lists_verdict_status_progress_and_spend(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test()
    _no_exception(at)
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
    _store_snapshot(seeded.url, seeded.experiment_id, doc)
    st.cache_data.clear()
    row = app_test().dataframe[0].value.iloc[0]
    assert row["verdict"] == "Ship cand"  # read from the JSON in SQL; Ship names the arm to switch to


def test_overview_shows_verdict_reasons_health_and_power(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/overview.py")
    _no_exception(at)
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
    _store_snapshot(seeded.url, seeded.experiment_id, doc)
    at = app_test("views/overview.py")
    _no_exception(at)
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
    _no_exception(at)
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


def test_side_by_side_shows_hostile_capture_as_literal_text(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/side_by_side.py")
    at.selectbox(key="sbs_order").set_value("request").run()
    _no_exception(at)
    code_blocks = [c.value for c in at.code]
    prompt = f"[user]\n{seeded.hostile}"
    assert prompt in code_blocks  # the prompt
    assert code_blocks.count(seeded.hostile) == 1  # the judge's rationale
    # the candidate's answer, formatted: Markdown without HTML, links or images
    answers = [h.proto.body for h in at.get("html")]
    shown = next(a for a in answers if "alert" in a)
    assert "&lt;script&gt;alert('xss')&lt;/script&gt;" in shown and "<script" not in shown
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown and "<img" not in shown
    assert "![tracker](http://evil.example/pixel.png)" in shown and "<a" not in shown
    assert "<strong>bold</strong>" in shown  # the Markdown itself is formatted
    markdown = " ".join(m.value for m in at.markdown) + " ".join(
        e.value for e in [*at.error, *at.warning, *at.info, *at.success]
    )
    for fragment in ("<script>", "onerror", "![tracker]", "evil.example"):
        assert fragment not in markdown
    assert any("request req-0000" in t.value for t in at.text)

    at.segmented_control(key="sbs_view").set_value("plain").run()
    assert [c.value for c in at.code].count(seeded.hostile) == 2  # the answer as typed, and the rationale


def _first_pair(at: AppTest) -> tuple[str, str]:
    control = next(t.value for t in at.text if t.value.startswith("Control: ctrl"))
    candidate = next(t.value for t in at.text if t.value.startswith("Candidate: cand"))
    return control, candidate


def test_side_by_side_orders_worst_regressions_first_by_default(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/side_by_side.py")
    _no_exception(at)
    assert at.selectbox(key="sbs_order").value == "worst_regression"
    control, candidate = _first_pair(at)
    # candidate errors where the control succeeded come first
    assert candidate.startswith("Candidate: cand · error") and control.startswith("Control: ctrl · ok")
    at.selectbox(key="sbs_order").set_value("best_improvement").run()
    control, candidate = _first_pair(at)
    assert control.startswith("Control: ctrl · error") and candidate.startswith("Candidate: cand · ok")


def test_side_by_side_counts_improved_same_and_regressed(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    engine = create_engine(seeded.url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.captured_request_id, a.role, s.value FROM replays r JOIN arms a ON a.id = r.arm_id "
                "LEFT JOIN scores s ON s.replay_id = r.id"
            )
        ).all()
    engine.dispose()
    by_request: dict[int, dict[str, float | None]] = {}
    for request, role, value in rows:
        by_request.setdefault(request, {})[role] = value
    diffs = [
        None if (control := s.get("control")) is None or (candidate := s.get("candidate")) is None
        else candidate - control
        for s in by_request.values()
    ]  # fmt: skip
    at = app_test("views/side_by_side.py")
    shown = {m.label: m.value for m in at.metric}
    assert shown["Improved"] == f"{sum(d is not None and d > 0 for d in diffs):,}"
    assert shown["Same score"] == f"{sum(d == 0 for d in diffs):,}"
    assert shown["Regressed"] == f"{sum(d is not None and d < 0 for d in diffs):,}"
    assert shown["Not scored"] == f"{sum(d is None for d in diffs):,}"


def test_side_by_side_word_diff_marks_what_each_side_has_alone(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/side_by_side.py")
    at.selectbox(key="sbs_order").set_value("request").run()
    at.segmented_control(key="sbs_view").set_value("diff").run()
    _no_exception(at)
    bodies = [h.proto.body for h in at.get("html")]
    # request 1: "Answer 1 from ctrl" vs "Answer 1 from cand"
    pair = next(i for i, b in enumerate(bodies) if "Answer 1 from" in b)
    assert ">ctrl</del>" in bodies[pair] and "<ins" not in bodies[pair]
    assert ">cand</ins>" in bodies[pair + 1] and "<del" not in bodies[pair + 1]


def test_segments_page_shows_per_segment_numbers(seeded: Any, app_test: Callable[..., AppTest]) -> None:
    at = app_test("views/segments.py")
    _no_exception(at)
    frame = at.dataframe[0].value
    assert int(frame["replays"].sum()) == seeded.replays
    assert set(frame["service"]) == {"support", "sales"}


def test_segments_page_shows_the_routing_in_plain_words(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    segment = {"dimension": "route", "segment": "/faq", "metric": "judge_score", "candidate": "cand",
               "n_requests": 60, "n": 60, "status": "tested", "kind": "mean", "estimate": -0.123456789,
               "ci_low": -0.4, "ci_high": 0.15, "p_value": 0.3, "p_adjusted": 0.000123}  # fmt: skip
    _store_snapshot(
        seeded.url, seeded.experiment_id, {**seeded.analysis, "routing": ROUTING, "segments": [segment]}
    )
    at = app_test("views/segments.py")
    _no_exception(at)
    assert [s.value for s in at.success] == [md_escape(saving_sentence(ROUTING) or "")]
    # a static table, so 'why' wraps instead of being cut at the right edge; its cells are escaped Markdown
    routes = at.table[0].value
    assert list(routes.columns) == ["segment", "share", "arm", "status", "p (adjusted)", "why"]
    assert list(routes["arm"]) == ["cand", "ctrl", "ctrl"]
    assert list(routes["share"]) == [md_escape(share) for share in ("28 %", "16 %", "2.7 %")]
    assert list(routes["why"]) == [md_escape(r.why) for r in route_rows(ROUTING)]
    effects = at.dataframe[1].value
    assert list(effects["change"]) == ["-0.12 points"] and list(effects["p (BH)"]) == ["< 0.001"]
    assert list(effects["95 % interval"]) == ["-0.40 to +0.15 points"]
    money = " ".join(str(v) for frame in [*at.dataframe, *at.table] for v in frame.value.to_numpy().ravel())
    assert not re.search(r"\d\.\d{6,}", money)  # no raw floats anywhere
    # With tested segments the descriptive per-arm scan runs only when asked for.
    assert len(at.dataframe) == 2
    at.toggle(key="seg_descriptive").set_value(True).run()
    _no_exception(at)
    assert int(at.dataframe[2].value["replays"].sum()) == seeded.replays


@pytest.mark.parametrize(
    ("computed", "recommended"),
    [("ship", "cand"), ("dont_ship", None), ("inconclusive", None), ("invalid", None)],
)
def test_decide_form_is_preset_to_what_the_analysis_says(
    computed: str, recommended: str | None, seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    doc = copy.deepcopy(seeded.analysis)
    doc["verdict"] |= {"verdict": computed, "recommended": recommended}
    _store_snapshot(seeded.url, seeded.experiment_id, doc)
    at = app_test("views/decide.py")
    _no_exception(at)
    # one option per declaration, the winning arm part of Ship's: Don't ship never comes with a winner
    # (the page's module is run afresh by the app, so its Choice is compared by value)
    preset = (AGREEING[computed], recommended)
    choice = at.radio[0].value
    assert choice is not None and (choice.verdict, choice.winner) == preset
    labels = {
        ("ship", "cand"): "Ship cand",
        ("dont_ship", None): "Don't ship",
        ("keep_running", None): "Keep running",
    }
    recommendation = " (the analysis' recommendation)"
    assert at.radio[0].options == [
        label + (recommendation if c == preset else "") for c, label in labels.items()
    ]
    assert not [s for s in at.selectbox if "Winning arm" in s.label]
    assert at.checkbox[0].value is True  # a Ship or Don't ship declaration concludes the experiment
    res = results(doc, PLAN)
    boxes = [e.value for e in [*at.success, *at.error, *at.info, *at.warning]]
    assert f"**{VERDICT_LABELS[computed]}**  \n{md_escape(res.headline)}" in boxes
    invalid_note = [b for b in boxes if b.startswith("The analysis is invalid")]
    assert bool(invalid_note) == (computed == "invalid")


def test_live_page_shows_rates_errors_and_spend(seeded: Any, app_test: Callable[..., AppTest]) -> None:
    at = app_test("views/live.py")
    _no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Replays/s (last minute)"] == f"{seeded.recent / 60:.2f}"
    assert metrics["Spend"] == display.money(sum(seeded.cost.values()))
    errors = at.dataframe[0].value
    assert list(errors["error code"]) == ["overloaded"]
    assert list(errors["replays"]) == [seeded.errors]


def test_live_page_lists_who_changed_the_budget_and_status_as_text(
    seeded: Any, app_test: Callable[..., AppTest], migrated: str
) -> None:
    assert "no budget change or status change recorded" in [t.value for t in app_test("views/live.py").text]
    engine = create_engine(migrated)
    with session_scope(session_factory(engine)) as session:
        experiment = store.experiments.by_id(seeded.experiment_id, session=session, lock=True)
        set_budget(session, experiment, 30.0, by="ana", reason="**more** <b>prompts</b> [x](http://e.vil)")
        store.experiments.transition(experiment.name, "pause", by="bo", session=session)
    engine.dispose()
    at = app_test("views/live.py")
    _no_exception(at)
    table = at.table[-1].value
    assert list(table.columns) == ["when", "by", "what", "change", "reason"]
    assert list(table["by"]) == ["bo", "ana"]  # newest first
    assert list(table["change"]) == [
        md_escape("running → paused"),
        md_escape(f"{display.money(5.0)} → {display.money(30.0)}"),
    ]
    assert list(table["reason"]) == [md_escape(display.MISSING),
                                     md_escape("**more** <b>prompts</b> [x](http://e.vil)")]  # fmt: skip
    shown = [cell.replace("\u2060\\", "") for cell in table["when"]]  # md_escape keeps '14:05' from a link
    assert all(re.fullmatch(r"\d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d UTC", when) for when in shown), shown


def test_glossary_explains_every_term_and_the_metrics(
    migrated: str, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/glossary.py")
    _no_exception(at)
    shown = " ".join(m.value for m in at.markdown)
    for term, meaning in TERMS.items():
        assert f"**{term}**  \n{meaning}" in shown
    assert f"**{display.metric_name('cost_usd')}**: {METRICS['cost_usd']}" in shown
    assert f"**Preferred over control**: {KINDS['preference']}" in shown


def test_glossary_names_the_experiments_metrics_as_its_pages_do(
    new_experiment: Callable[..., int], app_test: Callable[..., AppTest]
) -> None:
    metrics = [
        ("cost_usd", "cost"),
        ("quality", "mean"),
        ("pref_preference", "preference"),
        ("json_ok", "binary"),
    ]
    comparisons = [{"metric": m, "kind": k, "candidate": "cand"} for m, k in metrics]
    new_experiment({"n_requests": 10, "comparisons": comparisons + comparisons})
    at = app_test("views/glossary.py")
    _no_exception(at)
    assert at.subheader[0].value == "Metrics of fresh\\-experiment"
    [listed] = [m.value for m in at.markdown if m.value.startswith("- ")]
    assert listed.splitlines() == [
        f"- **Cost per request**: {METRICS['cost_usd']}",
        f"- **Quality**: {KINDS['mean']}",  # the judge's name, as the Overview and the report show it
        f"- **Preferred over control**: {KINDS['preference']}",
        f"- **Json ok**: {KINDS['binary']}",
    ]


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


def test_the_decision_history_reads_as_sentences_not_eleven_columns() -> None:
    first = DecisionRecord(1, 7, "keep_running", None, "keep_running", False, "erin",
                           datetime(2026, 12, 7, 9, 2), "need more data", None, 11, None, {})  # fmt: skip
    second = replace(first, id=2, verdict="ship", winner_arm="haiku", is_override=True, reason="cost matters",
                     override_reason="quality is fine for us", supersedes_id=1)  # fmt: skip
    frame = history_frame([second, first])
    assert list(frame.columns) == [
        "decision",
        "when",
        "by",
        "declared",
        "the analysis said",
        "reason",
        "evidence",
    ]
    assert list(frame.iloc[0]) == [md_escape(cell) for cell in (
        "#2", "07 Dec 2026 09:02 UTC", "erin", "Ship haiku", "Keep running (overridden)",
        "cost matters Override: quality is fine for us", "analysis #11, supersedes #1")]  # fmt: skip
    assert frame.iloc[1]["declared"] == md_escape("Keep running")


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
