"""Segments & routing: effects per segment and the routing recommendation when the analysis provides them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.views.common import PageContext, md_escape, require_experiment, run_page, title


def segment_frame(ctx: PageContext, experiment_id: int) -> pd.DataFrame:
    rows = data.segment_table(ctx.database_url, experiment_id)
    return pd.DataFrame(
        [
            {
                "service": r.service,
                "route": r.route,
                "arm": r.arm,
                "replays": r.replays,
                "error rate": r.error_rate,
                "mean cost USD": r.mean_cost_usd,
                "mean latency ms": r.mean_latency_ms,
            }
            for r in rows
        ],
        columns=["service", "route", "arm", "replays", "error rate", "mean cost USD", "mean latency ms"],
    )


def render(ctx: PageContext) -> None:
    experiment = require_experiment(ctx)
    title("Segments & routing", experiment)
    row = data.snapshot_row(ctx.database_url, experiment.id)
    analysis = row.analysis if row is not None and isinstance(row.analysis, dict) else {}
    segments = analysis.get("segments")
    routing = analysis.get("routing")
    if isinstance(segments, list) and segments:
        st.subheader("Effects per segment (Benjamini–Hochberg adjusted)", anchor=False)
        st.dataframe(pd.DataFrame([s for s in segments if isinstance(s, dict)]), hide_index=True)
    if isinstance(routing, dict) and isinstance(routing.get("segments"), list):
        st.subheader(f"Routing recommendation (by {routing.get('dimension', '?')})", anchor=False)
        columns = ["segment", "share", "arm", "status", "reason"]
        rows = [{k: r.get(k) for k in columns} for r in routing["segments"] if isinstance(r, dict)]
        st.dataframe(pd.DataFrame(rows, columns=columns), hide_index=True)
        saving = routing.get("saving")
        if isinstance(saving, dict):
            st.markdown(
                md_escape(
                    f"Projected saving: ${saving.get('per_request_usd')} per request "
                    f"(interval {saving.get('ci_low')} to {saving.get('ci_high')})"
                )
            )
        for line in routing.get("risk") or []:
            st.markdown(f"- {md_escape(str(line))}")
    elif isinstance(routing, list | dict) and routing:
        st.subheader("Routing recommendation", anchor=False)
        items = routing if isinstance(routing, list) else [routing]
        st.dataframe(pd.DataFrame([r for r in items if isinstance(r, dict)]), hide_index=True)
    if not segments and not routing:
        st.info(
            "The analysis has no per-segment effects or routing recommendation yet; "
            "below are descriptive numbers per segment (no tests)."
        )
    frame = segment_frame(ctx, experiment.id)
    if frame.empty:
        st.info(f"Experiment {md_escape(repr(experiment.name))} has no replays yet.")
        return
    st.subheader("Per segment and arm", anchor=False)
    st.dataframe(frame, hide_index=True)


if __name__ == "__main__":
    run_page(render)
