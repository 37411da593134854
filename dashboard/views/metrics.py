"""Metrics: effects with intervals (forest plots), latency ECDFs, quantile differences, cost by token."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis import display
from analysis.display import CHANGE_UNITS, change_number, change_text, span
from analysis.glossary import TERMS, term_help
from analysis.plan import DecisionPlan
from analysis.results import lower_is_better, no_events, no_events_text, plan_of, tone
from dashboard import charts, data
from dashboard.queries import ArmTokens, LatencyColumn
from dashboard.snapshot import SnapshotView
from dashboard.views.common import (
    PageContext,
    md_escape,
    metric_glossary,
    require_experiment,
    require_snapshot,
    run_page,
    title,
)

_PRICE_KEYS = {
    "input_tokens": "input_cost_per_token",
    "cache_creation_input_tokens": "cache_creation_input_token_cost",
    "cache_read_input_tokens": "cache_read_input_token_cost",
    "output_tokens": "output_cost_per_token",
    "reasoning_tokens": "output_cost_per_reasoning_token",
}


def effects_frame(snap: SnapshotView) -> pd.DataFrame:
    """Every comparison (fixed-horizon interval), in the metric's unit, with readable p-values. The test's
    name (long) is in `tests_frame`, so the grid fits 1280 px without a sideways scroll."""
    columns = ["metric", "candidate", "pairs", "change", "95 % interval", "p", "p (adjusted)"]
    rows = []
    for c in snap.comparisons:
        change, interval = change_text(c.kind, c.estimate), _interval(c.kind, c.ci_low, c.ci_high)
        if no_events(c.kind, c.control_value, c.candidate_value):
            change, interval = "no change", no_events_text(c.metric, c.n)
        elif c.kind == "preference" and c.estimate is not None:
            change = f"{change} preferred"  # a share of prompts, not a difference: '31 %' read as +31 %
        rows.append([display.metric_name(c.metric), c.candidate, display.count(c.n), change, interval,
                     display.p_value(c.p_value), display.p_value(c.p_adjusted)])  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def tests_frame(snap: SnapshotView) -> pd.DataFrame:
    """The statistical test behind each metric's p-values, once per metric and test (for engineers)."""
    pairs = dict.fromkeys((display.metric_name(c.metric), c.test) for c in snap.comparisons)
    return pd.DataFrame(list(pairs), columns=["metric", "test"])


def _interval(kind: str, low: float | None, high: float | None, *, quantile: bool = False) -> str:
    if low is None or high is None:
        return "not enough data"
    return span(change_text(kind, low, quantile=quantile), change_text(kind, high, quantile=quantile))


def quantiles_frame(snap: SnapshotView) -> pd.DataFrame:
    """The quantiles the analysis reports; those it cannot (too few pairs) are in `unreported_quantiles`."""
    columns = ["metric", "candidate", "quantile", "control", "candidate value", "difference", "95 % interval",
               "p"]  # fmt: skip
    rows = [
        [display.metric_name(c.metric), c.candidate, f"p{100 * q.quantile:g}", display.ms(q.control),
         display.ms(q.candidate), display.ms(q.estimate, sign="always"),
         _interval("latency", q.ci_low, q.ci_high, quantile=True), display.p_value(q.p_value)]
        for c in snap.comparisons
        for q in c.quantiles
        if q.supported
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def unreported_quantiles(snap: SnapshotView) -> list[str]:
    """Why a quantile is missing from the table, each reason once (it is usually the same for every metric
    and candidate: 'p99 needs at least 1000 pairs, found 240')."""
    return list(
        dict.fromkeys(
            q.reason or f"p{100 * q.quantile:g}: no reason given"
            for c in snap.comparisons
            for q in c.quantiles
            if not q.supported
        )
    )


def forest_panels(
    snap: SnapshotView, plan: DecisionPlan | None
) -> list[tuple[str, list[charts.ForestRow], str, float]]:
    """Per metric: (title, one row per candidate, axis title, no-effect value), in the axis' unit."""
    panels = []
    for metric in dict.fromkeys(c.metric for c in snap.comparisons):
        group = [c for c in snap.comparisons if c.metric == metric and c.estimate is not None]
        if not group:
            continue
        kind = group[0].kind
        null = change_number(kind, group[0].null_value if group[0].null_value is not None else 0.0) or 0.0
        lower = lower_is_better(metric, kind, plan)
        rows = []
        for c in group:
            est = change_number(kind, c.estimate) or 0.0
            low = change_number(kind, c.ci_low if c.ci_low is not None else c.estimate) or 0.0
            high = change_number(kind, c.ci_high if c.ci_high is not None else c.estimate) or 0.0
            text = f"{change_text(kind, c.estimate)} ({_interval(kind, c.ci_low, c.ci_high)})"
            rows.append(
                charts.ForestRow(c.candidate, est, low, high, tone(est, low, high, null, lower), text)
            )
        panels.append((display.metric_name(metric), rows, CHANGE_UNITS.get(kind, "change"), null))
    return panels


def cost_frame(arms: tuple[ArmTokens, ...], prices: dict[str, object]) -> pd.DataFrame:
    """Tokens and USD by token class per arm (base rates of the experiment's price snapshot)."""
    rows = []
    for arm in arms:
        price = prices.get(arm.model)
        rates = price if isinstance(price, dict) else {}
        for token_class, tokens in arm.tokens:
            if not tokens:  # a class this arm never used (no caching, no reasoning) is noise
                continue
            rate = rates.get(_PRICE_KEYS[token_class])
            if token_class in ("cache_creation_input_tokens", "cache_read_input_tokens") and rate is None:
                rate = rates.get("input_cost_per_token")
            rows.append(
                {
                    "arm": arm.arm,
                    "token_class": token_class.removesuffix("_tokens").replace("_", " "),
                    "tokens": tokens,
                    "usd": tokens * float(rate) if isinstance(rate, int | float) else None,
                }
            )
    return pd.DataFrame(rows, columns=["arm", "token_class", "tokens", "usd"])


def render(ctx: PageContext) -> None:
    experiment = require_experiment(ctx)
    title("Metrics", experiment)
    snap = require_snapshot(ctx, experiment)

    st.subheader("Effects with 95 % intervals", anchor=False)
    if not snap.comparisons:
        st.info("The analysis has no comparisons yet (no metric with complete pairs).")
    st.caption(
        "Each candidate against the control on the same prompts. Green: clearly better; red: clearly worse; "
        "grey: no clear difference (the interval crosses the dashed no-effect line). These are fixed-horizon "
        "intervals; the verdict on the Overview uses the always-valid ones."
    )
    panels = forest_panels(snap, plan_of({}, experiment.plan))
    for start in range(0, len(panels), 2):
        for cell, (name, rows, axis, null) in zip(st.columns(2), panels[start : start + 2], strict=False):
            cell.altair_chart(charts.forest_plot(rows, title=name, axis=axis, null=null), width="stretch")
    st.dataframe(
        effects_frame(snap),
        hide_index=True,
        column_config={
            "metric": st.column_config.TextColumn("metric", help="\n\n".join(metric_glossary(snap))),
            "95 % interval": st.column_config.TextColumn("95 % interval", help=TERMS["Interval (95 %)"]),
            "p": st.column_config.TextColumn("p", help=TERMS["p-value"]),
            "change": st.column_config.TextColumn(
                "change",
                help="Candidate minus control in the metric's unit (latency: candidate ÷ control; "
                "preference: the share of prompts where the candidate's answer is preferred, 50 % a tie).",
            ),
            "p (adjusted)": st.column_config.TextColumn("p (adjusted)", help=term_help("p-value", "Holm")),
        },
        height="content",
    )  # fmt: skip
    with st.expander("The test behind each p-value (for engineers)"):
        st.dataframe(tests_frame(snap), hide_index=True)

    st.subheader("Latency", anchor=False)
    timings: tuple[tuple[LatencyColumn, str], ...] = (
        ("ttft_ms", "Time to first token"),
        ("latency_ms", "Latency"),
    )
    ecdfs = data.latency_quantiles(ctx.database_url, experiment.id, experiment.replays)
    if experiment.replays > data.ECDF_SAMPLE_ROWS:
        st.caption(f"ECDFs from a fixed random sample of about {data.ECDF_SAMPLE_ROWS:,} replays.")
    for column, label in timings:
        quantiles = ecdfs[column]
        if quantiles:
            st.altair_chart(charts.ecdf_chart(quantiles, data.ECDF_GRID, label), width="stretch")
        else:
            st.info(f"{label}: no successful replays with this timing yet.")
    qframe, unreported = quantiles_frame(snap), unreported_quantiles(snap)
    if not qframe.empty or unreported:
        st.caption("Quantile differences (failures count as +∞ here only)")
    if not qframe.empty:
        st.dataframe(qframe, hide_index=True, height="content")
    if unreported:
        st.caption("Not reported: " + "; ".join(md_escape(reason) for reason in unreported) + ".")

    st.subheader("Cost by token class", anchor=False)
    arms = data.tokens_by_arm(ctx.database_url, experiment.id)
    cframe = cost_frame(arms, data.price_snapshot(ctx.database_url, experiment.id))
    if cframe.empty:
        st.info("No replays yet, so no tokens or cost.")
        return
    if cframe["usd"].notna().any():
        st.altair_chart(charts.cost_bars(cframe.dropna(subset=["usd"])), width="stretch")
    st.dataframe(
        cframe,
        hide_index=True,
        column_config={
            "token_class": st.column_config.TextColumn("token class"),
            "tokens": st.column_config.NumberColumn("tokens", format="localized"),
            "usd": st.column_config.NumberColumn("USD", format="$%.4f"),
        },
    )
    st.text(
        "Recorded cost per arm: "
        + "; ".join(
            f"{a.arm}: {display.money(a.cost_usd)} over {a.replays:,} replays "
            f"({display.money(a.cost_usd / a.replays if a.replays else None)} per request)"
            for a in arms
        )
    )


if __name__ == "__main__":
    run_page(render)
