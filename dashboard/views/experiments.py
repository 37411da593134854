"""Experiments: the latest verdict, status, progress, and spend against budget of each; a row opens its
Overview."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from analysis import display
from analysis.glossary import term_help
from dashboard import data
from dashboard.views.common import PageContext, choose_experiment, run_page, title

CLICKS_KEY = "experiments_clicks"
COLUMN_HELP = {
    "experiment": "Tick the box at the start of the row to open its Overview.",
    "verdict": "The latest analysis' verdict; Ship names the candidate it recommends switching to.\n\n"
    + term_help("Verdict"),
    "status": "running, paused, budget_exhausted or concluded.",
    "prompts": "Prompts replayed on every arm, of the plan's maximum.",
    "progress": "Share of the plan's maximum sample replayed.",
    "spend": "Spent on replays (and judging), of the budget, and the share of the budget spent.",
    "errors": "Replays that failed (any arm).",
    "candidates": "The model of each candidate arm, tried against the control (the Overview names each arm "
    "with its model).",
}


def _verdict(verdict: str | None, recommended: str | None) -> str:
    """The verdict as the Overview reads it: `Ship haiku` names the arm to switch to."""
    if not verdict:
        return "no verdict yet"
    label = display.verdict_label(verdict)
    return f"{label} {recommended}" if verdict == "ship" and recommended else label


def experiments_frame(ctx: PageContext) -> pd.DataFrame:
    rows = []
    for e in data.experiments(ctx.database_url):
        target = e.target_requests
        budget = (
            f" of {display.money(e.budget_usd)} ({display.percent(e.spend_usd / e.budget_usd)})"
            if e.budget_usd
            else " (no budget)"
        )
        rows.append(
            {
                "id": e.id,
                "experiment": e.name,
                "verdict": _verdict(e.verdict, e.recommended),
                "status": e.status,
                "prompts": f"{e.requests_replayed:,}" + (f" of {target:,}" if target else ""),
                "progress": min(1.0, e.requests_replayed / target) if target else None,
                "spend": display.money(e.spend_usd) + budget,
                "errors": e.errors,
                "candidates": ", ".join(a.model for a in e.arms if a.role == "candidate"),
            }
        )
    return pd.DataFrame(rows, columns=["id", *COLUMN_HELP])


def render(ctx: PageContext) -> None:
    title("Experiments")
    frame = experiments_frame(ctx)
    if frame.empty:
        st.info("No experiments yet. Create one with `shadowlab experiment create FILE.yaml`, then start it.")
        return
    config: dict[str, Any] = {
        name: st.column_config.TextColumn(name, help=text) for name, text in COLUMN_HELP.items()
    }
    config["id"] = None  # hidden: what a click selects
    # Blue, not the theme's primary red, which would read as an alarm on a healthy 100 %.
    config["progress"] = st.column_config.ProgressColumn(
        "progress", help=COLUMN_HELP["progress"], min_value=0.0, max_value=1.0, format="percent",
        width="small", color="blue",
    )  # fmt: skip
    config["errors"] = st.column_config.NumberColumn("errors", help=COLUMN_HELP["errors"], format="localized")
    # A new key after each click, so the list does not remember the selection and reopen it on return.
    clicks = st.session_state.setdefault(CLICKS_KEY, 0)
    event = st.dataframe(
        frame, hide_index=True, column_config=config, on_select="rerun", selection_mode="single-row",
        key=f"experiments-{clicks}",
    )  # fmt: skip
    st.caption("Tick the box at the start of a row to open its Overview (or choose it in the sidebar).")
    picked = event.selection.rows
    if picked:
        st.session_state[CLICKS_KEY] = clicks + 1
        choose_experiment(int(frame.iloc[picked[0]]["id"]))
        st.switch_page("views/overview.py")


if __name__ == "__main__":
    run_page(render)
