"""Numbers and names for people: every page of the dashboard and the report format through here.

Dollars with sensible precision, milliseconds, percentages, percentage points, judge points, p-values as
`< 0.001` or three decimals, counts with separators, and display names for metrics and
verdicts. Pure functions of plain values; `None` or a non-finite number is shown as "—".
"""

from __future__ import annotations

import math
from typing import Literal

from analysis.plan import ALIASES

Sign = Literal["always", "negative"]
MISSING = "—"

VERDICT_LABELS = {
    "ship": "Ship",
    "dont_ship": "Don't ship",
    "keep_running": "Keep running",
    "inconclusive": "Inconclusive",
    "invalid": "Invalid: fix the data first",
}
STATUS_LABELS = {"pass": "pass", "fail": "fail", "pending": "not yet"}
# The metrics the database loader always produces; scorer columns and `pref_<scorer>` are named below.
_METRIC_NAMES = {
    "error": "Error rate",
    "ttft_ms": "Time to first token",
    "latency_ms": "Latency",
    "cost_usd": "Cost per request",
    "judge_score": "Judge score",
}


def _finite(value: float | None) -> bool:
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


def _signed(text: str, value: float, sign: Sign) -> str:
    if value < 0:
        return f"-{text}"
    return f"+{text}" if sign == "always" and value > 0 else text


def significant(value: float, digits: int = 2) -> str:
    """`value` rounded to `digits` significant digits, without an exponent for everyday magnitudes."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    rounded = round(value, decimals)
    if decimals == 0:
        return f"{rounded:,.0f}"
    return f"{rounded:,.{decimals}f}"


def verdict_label(verdict: str | None) -> str:
    if verdict is None:
        return MISSING
    return VERDICT_LABELS.get(verdict, verdict.replace("_", " ").capitalize())


def count(n: int | float | None) -> str:
    return MISSING if n is None else f"{n:,.0f}"


def money(usd: float | None, *, sign: Sign = "negative") -> str:
    """$1,235 from $100, $12.35 from a dollar, two significant digits below ($0.00068, $0.055)."""
    if not _finite(usd):
        return MISSING
    assert usd is not None
    size = abs(usd)
    digits = 0 if size >= 100 else 2
    text = f"${size:,.{digits}f}" if size >= 1 else f"${significant(size, 2)}"
    return _signed(text, usd, sign)


def per_request(usd: float | None, *, sign: Sign = "negative") -> str:
    """A cost per request: $0.00068 per request."""
    if not _finite(usd):
        return MISSING
    assert usd is not None
    return f"{money(usd, sign=sign)} per request"


def ms(value: float | None, *, sign: Sign = "negative") -> str:
    """Milliseconds: one decimal below 10 ms, whole milliseconds with separators above."""
    if not _finite(value):
        return MISSING
    assert value is not None
    size = abs(value)
    text = f"{size:.1f} ms" if size < 10 else f"{size:,.0f} ms"
    return _signed(text, value, sign)


def percent(fraction: float | None, *, sign: Sign = "negative") -> str:
    """A fraction as a percentage: 0.43 → 43 %, 0.043 → 4.3 %, 0.0004 → 0.04 %."""
    if not _finite(fraction):
        return MISSING
    assert fraction is not None
    size = abs(fraction) * 100
    if size == 0:
        text = "0 %"
    elif size >= 10:
        text = f"{size:,.0f} %"
    elif size >= 1:
        text = f"{size:.1f} %"
    else:
        text = f"{significant(size, 1)} %"
    return _signed(text, fraction, sign)


def points(value: float | None, *, sign: Sign = "negative", unit: str = "points") -> str:
    """A difference on a score scale (judge points) or in percentage points (`unit="pp"`)."""
    if not _finite(value):
        return MISSING
    assert value is not None
    size = abs(value)
    text = f"{size:.2f}" if size < 10 and unit != "pp" else f"{size:,.1f}"
    return _signed(f"{text} {unit}".rstrip(), value, sign)


def duration(seconds: float | None) -> str:
    """A span of time as people say it: 40 s, 12 min, 3 h 20 min, 2 days 4 h."""
    if not _finite(seconds):
        return MISSING
    assert seconds is not None
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} day{'s' if days > 1 else ''}" + (f" {hours} h" if hours else "")


_P_THRESHOLDS = ("0.010", "0.050", "0.100")  # the usual α: a p-value never reads as one it is not


def p_value(p: float | None) -> str:
    """`< 0.001`, else three decimals (0.051, 0.500, 1.000): one precision, so a column of them lines up;
    more where three would round onto a usual α (0.0496, not 0.050 beside α = 0.05; 0.00999)."""
    if not _finite(p):
        return MISSING
    assert p is not None
    if p < 0.001:
        return "< 0.001"
    text = f"{p:.3f}"
    if text in _P_THRESHOLDS:
        for digits in range(4, 9):
            closer = f"{p:.{digits}f}"
            if float(closer) != float(text):
                return closer
    return text


def metric_name(metric: str) -> str:
    """Display name: `error_rate` → Error rate, `ttft_p95` → Time to first token (p95), `pref_judge` →
    Preferred over control (judge), a scorer column → its name with a capital letter."""
    base, quantile = metric, None
    stem = metric.removesuffix("_ms")
    for separator in (":p", "_p"):
        head, sep, tail = stem.rpartition(separator)
        if sep and tail.replace(".", "", 1).isdigit() and 0 < float(tail) < 100:
            base, quantile = head, tail
            break
    column = ALIASES.get(base, base)
    name = _METRIC_NAMES.get(column) or _METRIC_NAMES.get(f"{column}_ms")
    if name is None and column.startswith("pref_"):
        scorer = column.removeprefix("pref_")
        name = "Preferred over control" + ("" if scorer == "preference" else f" ({scorer})")
    if name is None:
        name = column.replace("_", " ")
        name = name[:1].upper() + name[1:]
    return f"{name} (p{quantile})" if quantile else name


# What `change_number` returns, per metric kind: a chart's axis title.
CHANGE_UNITS = {
    "cost": "change in $ per request",
    "latency": "change in % (candidate ÷ control − 1)",
    "binary": "change in percentage points",
    "mean": "change in points",
    "preference": "% of prompts where the candidate's answer is preferred",
}


def level_text(kind: str, value: float | None) -> str:
    """A level (the control's or the candidate's) in the metric's unit."""
    if kind == "cost":
        return money(value)
    if kind == "latency":
        return ms(value)
    if kind in ("binary", "preference"):
        return percent(value)
    return points(value)


def change_text(kind: str, value: float | None, *, quantile: bool = False, relative: bool = False) -> str:
    """An estimate (candidate − control; a ratio for latency, a win rate for preference) in the metric's
    unit; `quantile` for millisecond differences of a latency quantile, `relative` for a relative change."""
    if value is None:
        return MISSING
    if relative:
        return percent(value, sign="always")
    if kind == "cost":
        return money(value, sign="always")
    if kind == "latency":
        return ms(value, sign="always") if quantile else percent(value - 1, sign="always")
    if kind == "binary":
        return points(100 * value, sign="always", unit="pp")
    if kind == "preference":
        return percent(value)
    return points(value, sign="always")


def change_number(kind: str, value: float | None) -> float | None:
    """An estimate on the scale `CHANGE_UNITS` names: latency ratios as % change, rates × 100."""
    if value is None:
        return None
    if kind == "latency":
        return 100 * (value - 1)
    return 100 * value if kind in ("binary", "preference") else value


def span(low: str, high: str) -> str:
    """'-1.57 to -0.67 points' from '-1.57 points' and '-0.67 points' (the unit written once)."""
    head, sep, unit = low.partition(" ")
    if sep and high.endswith(f" {unit}"):
        return f"{head} to {high}"
    return f"{low} to {high}"
