"""Live: replays per second, errors by code, rate-limiter state, spend against budget, and who changed the
budget or the status, when and why."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from analysis import display
from dashboard import charts, data
from dashboard.views.common import (
    PageContext,
    db_session,
    in_utc,
    md_escape,
    require_experiment,
    run_page,
    title,
)
from shadowlab import store
from shadowlab.models import ExperimentChange

CHANGE_COLUMNS = ["when", "by", "what", "change", "reason"]
# Checked against the CLI's commands and options (tests/dashboard/test_live_caption.py).
CHANGES_CAPTION = (
    "Newest first; changes are never edited. The reason is the one given with `--reason` to "
    "`shadowlab experiment start`, `budget`, `pause`, `resume` or `conclude`, "
    'e.g. `shadowlab experiment pause NAME --reason "judge costs too much"`.'
)


def _value(field: str, text: str | None) -> str:
    if field == "budget":
        return display.money(float(text)) if text is not None else "no budget"
    return text or display.MISSING


def changes_frame(changes: Sequence[ExperimentChange]) -> pd.DataFrame:
    """One row per budget change or status transition, newest first, for a static table that wraps the
    reasons. Cells are escaped Markdown: names and reasons are typed by people."""
    rows = [
        [f"{in_utc(c.changed_at):%d %b %Y %H:%M} UTC", c.changed_by, c.field,
         f"{_value(c.field, c.before)} → {_value(c.field, c.after)}", c.reason or display.MISSING]
        for c in changes
    ]  # fmt: skip
    return pd.DataFrame([[md_escape(cell) for cell in row] for row in rows], columns=CHANGE_COLUMNS)


def change_history(ctx: PageContext, experiment_id: int) -> None:
    st.subheader("Budget and status changes", anchor=False)
    with db_session(ctx.database_url) as session:
        frame = changes_frame(store.changes.history(experiment_id, session=session))
    if frame.empty:
        st.text("no budget change or status change recorded")
        return
    st.caption(CHANGES_CAPTION)
    st.table(frame.style.hide(axis="index"))


def render(ctx: PageContext) -> None:
    if st.sidebar.button("Refresh live numbers", key="live_refresh"):
        data.live_stats.clear()
        data.experiments.clear()
    experiment = require_experiment(ctx)
    title("Live", experiment)
    live = data.live_stats(ctx.database_url, experiment.id)
    cols = st.columns(4)
    cols[0].metric("Replays/s (last minute)", f"{live.replays_last_minute / 60:.2f}")
    cols[1].metric("Replays/s (last 5 minutes)", f"{live.replays_last_5_minutes / 300:.2f}")
    cols[2].metric("Retries (last hour)", f"{live.retries_last_hour:,}")
    budget = experiment.budget_usd
    # The budget in the help and the bar, not as a metric delta: a delta draws an arrow, read as a rise.
    cols[3].metric(
        "Spend", display.money(experiment.spend_usd),
        help=f"Of the {display.money(budget)} budget." if budget else "No budget set.",
    )  # fmt: skip
    if budget:
        share = display.percent(experiment.spend_usd / budget)
        st.progress(
            min(1.0, experiment.spend_usd / budget), text=f"{share} of the {display.money(budget)} budget"
        )
    st.text(f"status: {experiment.status} · {experiment.replays:,} replays, {experiment.errors:,} errors")

    if live.per_minute:
        frame = pd.DataFrame(live.per_minute, columns=["minute", "replays"])
        st.altair_chart(charts.per_minute_chart(frame), width="stretch")
    else:
        st.info("No replays finished in the last hour.")

    st.subheader("Errors by code", anchor=False)
    if live.errors_by_code:
        st.dataframe(pd.DataFrame(live.errors_by_code, columns=["error code", "replays"]), hide_index=True)
    else:
        st.text("no errors recorded")

    st.subheader("Rate limiter", anchor=False)
    limiter = pd.DataFrame(
        live.limiter_admitted_last_minute, columns=["provider/model", "calls admitted, last 60 s"]
    )
    if not limiter.empty:
        st.dataframe(limiter, hide_index=True)
    for key, until in live.limiter_blocked:
        st.warning(f"{md_escape(key)}: waiting on the provider's retry-after until {until:%H:%M:%S} UTC")
    if limiter.empty and not live.limiter_blocked:
        st.text("no calls through the shared limiter in the last minute")

    change_history(ctx, experiment.id)


if __name__ == "__main__":
    run_page(render)
