"""Segments & routing: the routing recommendation in plain words, effects per segment, and descriptive
numbers per segment and arm when the analysis has no segments yet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from analysis import display
from analysis.display import change_text, span
from analysis.glossary import TERMS, term_help
from analysis.results import no_difference, no_difference_text, plan_of
from analysis.routing_text import mix_rows, risk_sentences, route_rows, saving_sentence
from dashboard import data
from dashboard.views.common import (
    PageContext,
    column_guide,
    freshness,
    md_escape,
    require_experiment,
    run_page,
    title,
)

ROUTE_HELP = {
    "segment": "A route of the captured traffic (service/route).",
    "share": "The segment's share of the captured prompts.",
    "arm": "Where the routing sends this segment.",
    "status": "moves: a candidate holds every guardrail here; stays: none does (yet); too small: too few "
    "prompts to judge.",
    "p (adjusted)": "The chosen (or most promising) candidate's evidence, adjusted for testing every segment "
    "at once (Holm); below the plan's alpha means it holds.\n\n" + term_help("Holm"),
    "why": "Which conditions decided it, per candidate.",
}


def segment_frame(ctx: PageContext, experiment_id: int) -> pd.DataFrame:
    """Descriptive numbers per (service, route) and arm: no tests, formatted with units."""
    rows = data.segment_table(ctx.database_url, experiment_id)
    return pd.DataFrame(
        [
            {
                "service": r.service,
                "route": r.route,
                "arm": r.arm,
                "replays": r.replays,
                "error rate": display.percent(r.error_rate),
                "cost per request": display.money(r.mean_cost_usd),
                "mean latency": display.ms(r.mean_latency_ms),
            }
            for r in rows
        ],
        columns=["service", "route", "arm", "replays", "error rate", "cost per request", "mean latency"],
    )


def effects_frame(segments: list[Mapping[str, Any]], dimension: str, metric: str) -> pd.DataFrame:
    """One dimension's segments for one metric: the change in the metric's unit, BH-adjusted p."""
    rows = []
    for s in segments:
        if s.get("dimension") != dimension or s.get("metric") != metric:
            continue
        kind = str(s.get("kind", "mean"))
        tested = s.get("status") == "tested"
        low, high = s.get("ci_low"), s.get("ci_high")
        interval = span(change_text(kind, low), change_text(kind, high)) if low is not None else "—"
        change = change_text(kind, s.get("estimate")) if tested else "too small to test"
        if tested and no_difference(kind, s.get("estimate"), low):
            change, interval = "no change", no_difference_text(s.get("n") or 0)
        rows.append(
            [str(s.get("segment")), str(s.get("candidate")), display.count(s.get("n_requests")), change,
             interval if tested else "—", display.p_value(s.get("p_adjusted")) if tested else "—"]
        )  # fmt: skip
    return pd.DataFrame(
        rows, columns=["segment", "candidate", "prompts", "change", "95 % interval", "p (BH)"]
    )


def routing_section(analysis: Mapping[str, Any], plan: Mapping[str, Any] | None) -> None:
    routing = analysis.get("routing")
    if not isinstance(routing, Mapping) or not isinstance(routing.get("segments"), list):
        return
    st.subheader(f"Routing recommendation (by {md_escape(str(routing.get('dimension', '?')))})", anchor=False)
    saving = saving_sentence(routing)
    moved = [r for r in route_rows(routing) if r.status == "moves"]
    (st.success if moved else st.info)(md_escape(saving or "No cost metric: no saving to project."))
    for line in risk_sentences(routing):
        st.markdown(f"- {md_escape(line)}")
    # A static table: it wraps 'why' (the reason a PM looks for) instead of cutting it at the right edge.
    # st.table renders Markdown, and segment and arm names are user text.
    rows = [[r.segment, r.share, r.arm, r.status, r.p_adjusted, r.why] for r in route_rows(routing)]
    frame = pd.DataFrame([[md_escape(cell) for cell in row] for row in rows], columns=list(ROUTE_HELP))
    st.table(frame.style.hide(axis="index"))
    column_guide(ROUTE_HELP, "Routing", "Segment")
    # When nothing moves the routed mix is the control itself: a table of zeros (and "not yet" for quantiles
    # no test can settle) would only raise questions.
    mix = mix_rows(analysis, plan) if moved else []
    if mix:
        st.markdown("**Over all traffic, the routed mix against the control**")
        st.dataframe(
            pd.DataFrame(
                [[r.name, r.status_label, r.change, r.interval, r.allowed] for r in mix],
                columns=["metric", "status", "change", "95 % interval", "allowed"],
            ),
            hide_index=True,
        )
    with st.expander("The routing rule's exact reasons (for engineers)"):
        for r in route_rows(routing):
            st.text(f"{r.segment}: {r.reason}")
        for line in routing.get("risk") or []:
            st.text(f"• {line}")


def segments_section(analysis: Mapping[str, Any], plan: Mapping[str, Any] | None) -> None:
    segments = [s for s in analysis.get("segments") or [] if isinstance(s, Mapping)]
    if not segments:
        return
    st.subheader("Effects per segment", anchor=False)
    dimensions = list(dict.fromkeys(str(s.get("dimension")) for s in segments))
    metrics = list(dict.fromkeys(str(s.get("metric")) for s in segments))
    cols = st.columns(2)
    dimension = cols[0].selectbox(
        "Segments by",
        dimensions,
        index=dimensions.index("route") if "route" in dimensions else 0,
        key="seg_dim",
    )
    decision_plan = plan_of(analysis, plan)
    # The first guardrail (quality, usually) is what a segment is most often asked about; then the goal.
    wanted = (
        [g.metric for g in decision_plan.guardrails] + [decision_plan.primary_metric] if decision_plan else []
    )
    first = next(
        (m for w in wanted for m in metrics if m == w or display.metric_name(m) == display.metric_name(w)),
        None,
    )
    metric = cols[1].selectbox(
        "Metric", metrics, index=metrics.index(first) if first else 0, format_func=display.metric_name,
        key="seg_metric",
    )  # fmt: skip
    st.dataframe(
        effects_frame(segments, dimension, metric),
        hide_index=True,
        column_config={
            "segment": st.column_config.TextColumn("segment", help=TERMS["Segment"]),
            "95 % interval": st.column_config.TextColumn("95 % interval", help=TERMS["Interval (95 %)"]),
            "p (BH)": st.column_config.TextColumn("p (BH)", help=term_help("p-value", "Benjamini–Hochberg")),
        },
    )
    st.caption(
        "Segments are exploratory: p-values are adjusted across segments (Benjamini–Hochberg), and segments "
        "with too few prompts are listed but not tested."
    )


def render(ctx: PageContext) -> None:
    experiment = require_experiment(ctx)
    title("Segments & routing", experiment)
    row = data.snapshot_row(ctx.database_url, experiment.id)
    if row is not None:
        freshness(ctx, experiment, row.computed_at)
    analysis = row.analysis if row is not None and isinstance(row.analysis, dict) else {}
    routing_section(analysis, experiment.plan)
    segments_section(analysis, experiment.plan)
    tested = bool(analysis.get("segments") or analysis.get("routing"))
    if not tested:
        st.info(
            "The analysis has no per-segment effects or routing recommendation yet; "
            "below are descriptive numbers per segment (no tests)."
        )
    # With tested segments above, the descriptive numbers are a second look most readers skip: a grouped scan
    # of every replay (seconds at a million), so it runs only when asked for.
    elif not st.toggle("Show numbers per segment and arm (descriptive, no tests)", key="seg_descriptive"):
        return
    frame = segment_frame(ctx, experiment.id)
    if frame.empty:
        st.info(f"Experiment {md_escape(repr(experiment.name))} has no replays yet.")
        return
    st.dataframe(frame, hide_index=True)


if __name__ == "__main__":
    run_page(render)
