"""Decide: declare ship / don't ship / keep running with a reason; the history of decisions and overrides.

Only deciders reach this page (the router does not register it for viewers), and `declare` checks the role
again. A decision is never edited: declaring again supersedes the current one.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.decisions import DECLARED_VERDICTS, DecisionRecord, declare, history
from dashboard.snapshot import VERDICT_LABELS
from dashboard.views.common import (
    PageContext,
    current_user,
    db_session,
    md_escape,
    require_experiment,
    run_page,
    title,
)
from shadowlab.errors import ShadowlabError

SEEN_KEY = "decide_seen_current_{}"  # per experiment: the current decision seen when the form was drawn


def verdict_label(verdict: str | None) -> str:
    return "—" if verdict is None else VERDICT_LABELS.get(verdict, verdict)


def history_frame(records: list[DecisionRecord]) -> pd.DataFrame:
    columns = ["decision", "decided at", "by", "verdict", "winner", "reason", "analysis said", "override",
               "override reason", "snapshot", "supersedes"]  # fmt: skip
    rows = [
        [f"#{r.id}", r.decided_at, r.decided_by, verdict_label(r.verdict), r.winner_arm or "", r.reason,
         verdict_label(r.computed_verdict), "yes" if r.is_override else "no", r.override_reason or "",
         r.analysis_snapshot_id, f"#{r.supersedes_id}" if r.supersedes_id else ""]
        for r in records
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def render(ctx: PageContext) -> None:
    user = current_user()
    experiment = require_experiment(ctx)
    title("Decide", experiment)
    if not user.can_declare:
        st.warning("Only deciders can declare a decision.")
        st.stop()
    snap = data.snapshot(ctx.database_url, experiment.id)
    if snap is None or snap.verdict is None:
        st.info("The analysis has no verdict yet; declaring stores the latest analysis as evidence.")
    else:
        recommended = (
            f" (recommended arm: {md_escape(snap.verdict.recommended)})" if snap.verdict.recommended else ""
        )
        st.info(f"The analysis says: {snap.verdict.label}{recommended}")

    seen_key = SEEN_KEY.format(experiment.id)
    candidates = [arm.name for arm in experiment.arms if arm.role == "candidate"]
    with st.form("declare", clear_on_submit=False):
        verdict = st.radio("Decision", DECLARED_VERDICTS, format_func=verdict_label, horizontal=True)
        winner = st.selectbox("Winning arm (for Ship)", candidates) if candidates else None
        reason = st.text_area("Reason (required)")
        override = st.text_area("Override reason (required when the decision differs from the analysis)")
        submitted = st.form_submit_button("Declare", type="primary")
    if submitted:
        try:
            with db_session(ctx.database_url) as session:
                record = declare(
                    session, user=user, experiment_id=experiment.id, verdict=verdict, reason=reason,
                    winner_arm=winner if verdict == "ship" else None, override_reason=override,
                    expected_current_id=st.session_state.get(seen_key),
                )  # fmt: skip
            note = " (override of the analysis)" if record.is_override else ""
            st.success(f"Decision #{record.id} recorded: {verdict_label(record.verdict)}{note}.")
        except ShadowlabError as exc:  # DecisionError, or the analysis could not run
            st.error(f"Not recorded: {exc}")

    with db_session(ctx.database_url) as session:
        records = history(session, experiment.id)
    st.session_state[seen_key] = records[0].id if records else None
    st.subheader("History", anchor=False)
    if not records:
        st.caption("No decision yet.")
        return
    current = records[0]
    st.caption(
        f"Current: #{current.id} {verdict_label(current.verdict)} by {md_escape(current.decided_by)}. "
        "Decisions are never edited; a new one supersedes the current one."
    )
    st.dataframe(history_frame(records), hide_index=True)


if __name__ == "__main__":
    run_page(render)
