"""Numbers and names for people (`analysis.display`): the units and rounding every page and the report use."""

from __future__ import annotations

import math

import pytest

from analysis import display


@pytest.mark.parametrize(
    ("usd", "sign", "expected"),
    [
        (0.0006795960000000001, "negative", "$0.00068"),
        (-0.0011353291666666668, "always", "-$0.0011"),
        (0.0546, "always", "+$0.055"),
        (12.345, "negative", "$12.35"),  # cents from a dollar up
        (291.346, "negative", "$291"),
        (1234567.8, "negative", "$1,234,568"),
        (0.0, "always", "$0"),
        (None, "negative", "—"),
        (math.nan, "negative", "—"),
    ],
)
def test_money_keeps_two_significant_digits_below_a_dollar(
    usd: float | None, sign: display.Sign, expected: str
) -> None:
    assert display.money(usd, sign=sign) == expected


def test_per_request_and_milliseconds() -> None:
    assert display.per_request(0.00068) == "$0.00068 per request"
    assert display.ms(-237.6677, sign="always") == "-238 ms"
    assert display.ms(1575.9) == "1,576 ms"
    assert display.ms(4.26) == "4.3 ms"
    assert display.ms(math.inf) == "—"


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.43, "43 %"), (-0.0412, "-4.1 %"), (0.000412, "0.04 %"), (0.0, "0 %"), (1.5, "150 %")],
)
def test_percent(fraction: float, expected: str) -> None:
    assert display.percent(fraction) == expected


def test_points_and_percentage_points() -> None:
    assert display.points(-1.1208333, sign="always") == "-1.12 points"
    assert display.points(2.0, sign="always", unit="pp") == "+2.0 pp"


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (3.2e-110, "< 0.001"),
        (0.000999, "< 0.001"),
        (0.05125615719131047, "0.051"),
        (0.0902, "0.090"),
        (0.0496, "0.0496"),  # three decimals would read as α = 0.05 itself
        (0.05041, "0.0504"),
        (0.05, "0.050"),
        (0.00999, "0.00999"),
        (0.5, "0.500"),
        (1.0, "1.000"),
    ],
)
def test_p_values_are_short(p: float, expected: str) -> None:
    assert display.p_value(p) == expected
    assert len(display.p_value(p)) <= 10


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.4, "0 s"), (59.4, "59 s"), (61, "1 min"), (3600, "1 h"), (12_060, "3 h 21 min"), (86_400, "1 day"),
     (2 * 86_400 + 4 * 3600 + 59, "2 days 4 h"), (-5, "0 s"), (None, "—")],
)  # fmt: skip
def test_durations_read_as_people_say_them(seconds: float | None, expected: str) -> None:
    assert display.duration(seconds) == expected


def test_counts_and_verdict_labels() -> None:
    assert display.count(1000) == "1,000"
    assert display.verdict_label("dont_ship") == "Don't ship"
    assert display.verdict_label("invalid") == "Invalid: fix the data first"
    assert display.verdict_label("something_new") == "Something new"


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("error_rate", "Error rate"),
        ("error", "Error rate"),
        ("ttft_p95", "Time to first token (p95)"),
        ("latency_ms:p99", "Latency (p99)"),
        ("cost_usd", "Cost per request"),
        ("pref_preference", "Preferred over control"),
        ("pref_judge", "Preferred over control (judge)"),
        ("quality", "Quality"),
        ("judge_score", "Judge score"),
    ],
)
def test_metric_names(metric: str, expected: str) -> None:
    assert display.metric_name(metric) == expected


def test_changes_by_kind() -> None:
    assert display.change_text("latency", 0.7497) == "-25 %"
    assert display.change_text("latency", -64.54, quantile=True) == "-65 ms"
    assert display.change_text("binary", 0.012) == "+1.2 pp"
    assert display.change_text("cost", -0.67, relative=True) == "-67 %"
    assert display.change_text("preference", 0.3052) == "31 %"
    assert display.change_number("latency", 0.75) == pytest.approx(-25.0)
    assert display.span("-1.57 points", "-0.67 points") == "-1.57 to -0.67 points"
    assert display.span("-$0.0013", "-$0.00099") == "-$0.0013 to -$0.00099"
