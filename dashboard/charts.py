"""Altair charts built from numbers the analysis or SQL already computed (no statistics here)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import cast

import altair as alt
import pandas as pd

TONE_COLOURS = {"better": "#1a7f37", "worse": "#cf222e", "no clear difference": "#6e7781"}
ROW_HEIGHT = 34  # px per candidate row: two labels never share a band


@dataclass(frozen=True)
class ForestRow:
    """One candidate's estimate and interval, already in the axis' unit, and how it reads."""

    label: str
    estimate: float
    low: float
    high: float
    tone: str
    text: str  # the estimate and interval as people read them, for the tooltip


def forest_plot(rows: Sequence[ForestRow], *, title: str, axis: str, null: float) -> alt.LayerChart:
    """One panel per metric: a row per candidate with its interval, coloured by better / worse / unclear,
    and the dashed no-effect line, always inside the axis."""
    frame = pd.DataFrame([asdict(r) for r in rows], columns=[f.name for f in fields(ForestRow)])
    values = [*frame["low"], *frame["high"], *frame["estimate"], null]
    low, high = min(values), max(values)
    pad = (high - low) * 0.12 or max(abs(null), 1.0) * 0.1
    scale = alt.Scale(domain=[low - pad, high + pad], nice=False, zero=False)
    y = alt.Y("label:N", title=None, sort=None, axis=alt.Axis(labelLimit=220, labelFontSize=13))
    colour = alt.Color(
        "tone:N", scale=alt.Scale(domain=list(TONE_COLOURS), range=list(TONE_COLOURS.values())), legend=None
    )
    x_axis = alt.Axis(title=axis, titlePadding=8, labelFlush=False, tickCount=5, labelOverlap="greedy")
    interval = (
        alt.Chart(frame)
        .mark_rule(strokeWidth=3)
        .encode(x=alt.X("low:Q", scale=scale, axis=x_axis), x2="high:Q", y=y, color=colour)
    )
    tooltip = [alt.Tooltip("label:N", title="candidate"), alt.Tooltip("text:N", title="change")]
    point = (
        alt.Chart(frame)
        .mark_point(filled=True, size=90)
        .encode(x="estimate:Q", y=y, color=colour, tooltip=tooltip)
    )
    rule = (
        alt.Chart(pd.DataFrame({"null": [null]}))
        .mark_rule(strokeDash=[5, 4], color="#444", strokeWidth=1.5)
        .encode(x="null:Q")
    )
    # A step per row, not a fixed height: Streamlit squeezes a layered chart's fixed height, which put every
    # candidate's label on one line.
    return cast(alt.LayerChart, alt.layer(rule, interval, point)).properties(
        title=alt.TitleParams(title, anchor="start", fontSize=14), height=alt.Step(ROW_HEIGHT)
    )


def log_ticks(values: Sequence[float]) -> list[float]:
    """1, 2, 5 per decade across the positive values: a log axis' default labels every 1-9 step, which
    crowds 2,000 3,000 4,000 5,000 into one word."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if not positive:
        return []
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    ticks = [m * 10.0**k for k in range(low, high + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if min(positive) / 2 <= t <= max(positive) * 2]
    return inside if len(inside) <= 8 else [t for t in inside if float(math.log10(t)).is_integer()]


# Milliseconds below a second, seconds from there: "200 ms", "1 s", "2 s", "10 s".
_MS_LABEL = (
    "datum.value >= 1000 ? format(datum.value / 1000, '~r') + ' s' : format(datum.value, '~r') + ' ms'"
)


def ecdf_chart(quantiles: Mapping[str, Sequence[float]], grid: Sequence[float], title: str) -> alt.Chart:
    """Per-arm ECDFs drawn from SQL quantiles: x = milliseconds, y = share of replays at or below."""
    rows = [
        {"arm": arm, "ms": value, "share": q}
        for arm, values in quantiles.items()
        for q, value in zip(grid, values, strict=True)
    ]
    frame = pd.DataFrame(rows, columns=["arm", "ms", "share"])
    axis = alt.Axis(values=log_ticks(list(frame["ms"])), labelExpr=_MS_LABEL, labelOverlap="greedy")
    return cast(
        alt.Chart,
        alt.Chart(frame)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("ms:Q", title=f"{title} (log scale)", scale=alt.Scale(type="log"), axis=axis),
            y=alt.Y("share:Q", title="share of successful replays", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("arm:N"),
            tooltip=["arm", "ms", "share"],
        )
        .properties(height=260),
    )


def cost_bars(frame: pd.DataFrame) -> alt.Chart:
    """Stacked USD by token class per arm; `frame` has columns arm, token_class, usd."""
    return cast(
        alt.Chart,
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("usd:Q", title="USD"),
            y=alt.Y("arm:N", title=None),
            color=alt.Color("token_class:N", title="token class"),
            tooltip=["arm", "token_class", "usd"],
        )
        .properties(height=max(80, 40 * frame["arm"].nunique())),
    )


def per_minute_chart(frame: pd.DataFrame) -> alt.Chart:
    """Replays finished per minute; `frame` has columns minute, replays."""
    return cast(
        alt.Chart,
        alt.Chart(frame)
        .mark_bar()
        .encode(x=alt.X("minute:T", title=None), y=alt.Y("replays:Q", title="replays / min"))
        .properties(height=200),
    )
