"""Every page on a seeded Postgres: the numbers shown are the analysis snapshot's and the SQL aggregates."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.snapshot import VERDICT_LABELS

pytestmark = pytest.mark.postgres


def _close(a: object, b: object) -> bool:
    if b is None:
        return a is None or (isinstance(a, float) and math.isnan(a))
    return isinstance(a, int | float) and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    problems = [e.value for e in at.error if not e.value.startswith("Verdict: ")]
    assert not problems, problems


def test_experiments_page_lists_status_progress_spend_and_verdict(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test()
    _no_exception(at)
    row = at.dataframe[0].value.iloc[0]
    assert row["experiment"] == "checkout-assistant-v2"
    assert row["status"] == "running"
    assert row["arms"] == "ctrl (control: model-a), cand (candidate: model-b)"
    assert row["requests replayed"] == seeded.replays // 2
    assert row["planned"] == 400
    assert _close(row["spend USD"], round(sum(seeded.cost.values()), 6))
    assert row["budget USD"] == 5.0
    assert row["replay errors"] == seeded.errors
    assert row["verdict"] == VERDICT_LABELS[seeded.analysis["verdict"]["verdict"]]


def test_overview_shows_verdict_reasons_health_and_power(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/overview.py")
    _no_exception(at)
    verdict = seeded.analysis["verdict"]
    shown = [
        e.value for e in [*at.success, *at.error, *at.info, *at.warning] if e.value.startswith("Verdict: ")
    ]
    assert shown == [f"Verdict: {VERDICT_LABELS[verdict['verdict']]}"]
    texts = [t.value for t in at.text]
    assert verdict["reasons"]
    for reason in verdict["reasons"]:
        assert f"• {reason}" in texts
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests analysed"] == f"{seeded.analysis['n_requests']:,}"
    assert metrics["Planned sample"] == "400"
    if verdict["verdict"] == "keep_running":
        assert metrics["Estimated time to decision"].startswith("≈")  # 60 replays finished in the last hour
    else:
        assert metrics["Estimated time to decision"] == "decided"
    rule = at.dataframe[0].value
    expected_checks = [(c["arm"], k["name"], k["status"]) for c in verdict["candidates"] for k in c["checks"]]
    assert list(zip(rule["candidate"], rule["check"], rule["status"], strict=True)) == expected_checks
    health = at.dataframe[1].value
    checks = seeded.analysis["health"]["checks"]
    assert list(health["check"]) == [c["name"] for c in checks]
    assert list(health["detail"]) == [c["detail"] for c in checks]
    power = at.dataframe[2].value
    assert all(
        _close(a, c["mde"]) for a, c in zip(power["MDE now"], seeded.analysis["comparisons"], strict=True)
    )
    assert list(power["pairs"]) == [c["n"] for c in seeded.analysis["comparisons"]]


def test_metrics_page_shows_every_effect_quantile_and_cost(
    seeded: Any, app_test: Callable[..., AppTest]
) -> None:
    at = app_test("views/metrics.py")
    _no_exception(at)
    effects = at.dataframe[0].value
    comparisons = seeded.analysis["comparisons"]
    assert list(effects["metric"]) == [c["metric"] for c in comparisons]
    for key in ("n", "estimate", "ci_low", "ci_high", "p_value", "p_adjusted"):
        assert all(_close(a, c[key]) for a, c in zip(effects[key], comparisons, strict=True)), key
    quantiles = at.dataframe[1].value
    expected = [q for c in comparisons for q in c["quantiles"]]
    assert len(quantiles) == len(expected) > 0
    assert all(_close(a, q["estimate"]) for a, q in zip(quantiles["difference ms"], expected, strict=True))
    cost = at.dataframe[2].value.set_index(["arm", "token_class"])
    for arm, classes in seeded.tokens.items():
        for token_class, total in classes.items():
            assert cost.loc[(arm, token_class), "tokens"] == total
    assert _close(cost.loc[("ctrl", "output"), "usd"], seeded.tokens["ctrl"]["output"] * 5e-6)
    # forest plots (one per metric kind), two ECDFs and the cost bars
    assert len(at.get("vega_lite_chart")) == len({c["kind"] for c in comparisons}) + 3


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
    _no_exception(at)
    code_blocks = [c.value for c in at.code]
    prompt = f"[user]\n{seeded.hostile}"
    assert prompt in code_blocks  # the prompt
    assert code_blocks.count(seeded.hostile) == 2  # the candidate's answer and the judge's rationale
    markdown = " ".join(m.value for m in at.markdown) + " ".join(e.value for e in at.get("alert"))
    for fragment in ("<script>", "onerror", "![tracker]", "evil.example"):
        assert fragment not in markdown
    assert any(t.value.startswith("request req-0000") for t in at.text)


def test_side_by_side_worst_regressions_come_first(seeded: Any, app_test: Callable[..., AppTest]) -> None:
    at = app_test("views/side_by_side.py")
    at.radio(key="sbs_order").set_value("worst_regression").run()
    _no_exception(at)
    first = next(t.value for t in at.text if t.value.startswith("candidate cand"))
    # candidate errors where the control succeeded come first
    assert first.startswith("candidate cand · error")


def test_segments_page_shows_per_segment_numbers(seeded: Any, app_test: Callable[..., AppTest]) -> None:
    at = app_test("views/segments.py")
    _no_exception(at)
    frame = at.dataframe[0].value
    assert int(frame["replays"].sum()) == seeded.replays
    assert set(frame["service"]) == {"support", "sales"}


def test_live_page_shows_rates_errors_and_spend(seeded: Any, app_test: Callable[..., AppTest]) -> None:
    at = app_test("views/live.py")
    _no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Replays/s (last minute)"] == f"{seeded.recent / 60:.2f}"
    assert metrics["Spend"] == f"${sum(seeded.cost.values()):,.4f}"
    errors = at.dataframe[0].value
    assert list(errors["error code"]) == ["overloaded"]
    assert list(errors["replays"]) == [seeded.errors]
