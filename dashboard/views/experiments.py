"""Experiments: status, arms, progress, spend against budget and the latest verdict of each."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.snapshot import VERDICT_LABELS
from dashboard.views.common import PageContext, run_page, title


def experiments_frame(ctx: PageContext) -> pd.DataFrame:
    rows = []
    for e in data.experiments(ctx.database_url):
        target = e.target_requests
        rows.append(
            {
                "experiment": e.name,
                "status": e.status,
                "arms": ", ".join(f"{a.name} ({a.role}: {a.model})" for a in e.arms),
                "requests replayed": e.requests_replayed,
                "planned": target,
                "progress": min(1.0, e.requests_replayed / target) if target else None,
                "replay errors": e.errors,
                "spend USD": round(e.spend_usd, 6),
                "budget USD": e.budget_usd,
                "budget used": (e.spend_usd / e.budget_usd) if e.budget_usd else None,
                "verdict": VERDICT_LABELS.get(e.verdict, e.verdict) if e.verdict else "no verdict yet",
            }
        )
    return pd.DataFrame(rows)


def render(ctx: PageContext) -> None:
    title("Experiments")
    frame = experiments_frame(ctx)
    if frame.empty:
        st.info("No experiments yet. Create one with `shadowlab experiment create FILE.yaml`, then start it.")
        return
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "progress": st.column_config.ProgressColumn(
                "progress", min_value=0.0, max_value=1.0, format="percent"
            ),
            "budget used": st.column_config.ProgressColumn(
                "budget used", min_value=0.0, max_value=1.0, format="percent"
            ),
            "spend USD": st.column_config.NumberColumn(format="$%.4f"),
            "budget USD": st.column_config.NumberColumn(format="$%.2f"),
        },
    )
    st.caption("Choose an experiment in the sidebar, then open Overview for its verdict and evidence.")


if __name__ == "__main__":
    run_page(render)
