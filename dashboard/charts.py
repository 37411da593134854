"""Altair charts built from numbers the analysis or SQL already computed (no statistics here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import altair as alt
import pandas as pd

from dashboard.snapshot import ComparisonView

KIND_AXIS = {
    "mean": "mean difference (candidate − control)",
    "cost": "cost difference per request, USD",
    "binary": "rate difference (candidate − control)",
    "latency": "ratio of geometric means (candidate / control)",
    "preference": "win rate against control",
}


def forest_plot(comparisons: Sequence[ComparisonView], kind: str) -> alt.LayerChart:
    """One row per metric × candidate: the estimate and its interval, with the no-effect line."""
    rows = [
        {
            "effect": f"{c.metric} · {c.candidate}",
            "estimate": c.estimate,
            "ci_low": c.ci_low if c.ci_low is not None else c.estimate,
            "ci_high": c.ci_high if c.ci_high is not None else c.estimate,
            "p_adjusted": c.p_adjusted,
        }
        for c in comparisons
        if c.estimate is not None
    ]
    frame = pd.DataFrame(rows, columns=["effect", "estimate", "ci_low", "ci_high", "p_adjusted"])
    null = next((c.null_value for c in comparisons if c.null_value is not None), 0.0)
    y = alt.Y("effect:N", title=None, sort=None)
    x_title = KIND_AXIS.get(kind, "estimate")
    interval = (
        alt.Chart(frame)
        .mark_rule(strokeWidth=2)
        .encode(x=alt.X("ci_low:Q", title=x_title, scale=alt.Scale(zero=False)), x2="ci_high:Q", y=y)
    )
    point = (
        alt.Chart(frame)
        .mark_point(filled=True, size=70)
        .encode(
            x="estimate:Q",
            y=y,
            tooltip=["effect", "estimate", "ci_low", "ci_high", "p_adjusted"],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"null": [null]}))
        .mark_rule(strokeDash=[4, 4], color="gray")
        .encode(x="null:Q")
    )
    return cast(alt.LayerChart, alt.layer(interval, point, rule)).properties(height=max(60, 28 * len(rows)))


def ecdf_chart(quantiles: Mapping[str, Sequence[float]], grid: Sequence[float], title: str) -> alt.Chart:
    """Per-arm ECDFs drawn from SQL quantiles: x = milliseconds, y = share of replays at or below."""
    rows = [
        {"arm": arm, "ms": value, "share": q}
        for arm, values in quantiles.items()
        for q, value in zip(grid, values, strict=True)
    ]
    frame = pd.DataFrame(rows, columns=["arm", "ms", "share"])
    return cast(
        alt.Chart,
        alt.Chart(frame)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("ms:Q", title=f"{title} (ms)", scale=alt.Scale(type="log")),
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
