"""Decide: declare ship / don't ship / keep running with a reason, beside what the analysis says; the form
is preset to the declaration that agrees with the analysis; the history of decisions and overrides.

Only deciders reach this page (the router does not register it for viewers), and `declare` checks the role
again. A decision is never edited: declaring again supersedes the current one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from analysis import display
from analysis.glossary import term_help
from analysis.summary import Results, results
from dashboard import data
from dashboard.decisions import AGREEING, DecisionRecord, declare, history
from dashboard.views.common import (
    VERDICT_BOX,
    PageContext,
    current_user,
    db_session,
    freshness,
    in_utc,
    md_escape,
    pick_up_refresh,
    require_experiment,
    run_page,
    title,
)
from shadowlab.errors import ShadowlabError

PRESET_HELP = (
    "Preset to what the analysis recommends; going against it needs an override reason.\n\n"
    + term_help("Verdict")
)
SEEN_KEY = "decide_seen_current_{}"  # per experiment: the current decision seen when the form was drawn


def verdict_label(verdict: str | None) -> str:
    return display.verdict_label(verdict)


def declared(record: DecisionRecord) -> str:
    """'Ship haiku' names the arm, as the form and the Experiments list do; other verdicts alone."""
    label = verdict_label(record.verdict)
    return f"{label} {record.winner_arm}" if record.verdict == "ship" and record.winner_arm else label


def history_frame(records: list[DecisionRecord]) -> pd.DataFrame:
    """One row per decision, newest first, for a static table that wraps the reasons (eleven grid columns
    were cut at 1280 px, the reasons among them). Cells are escaped Markdown: reasons and names are typed."""
    rows = []
    for r in records:
        said = verdict_label(r.computed_verdict) + (" (overridden)" if r.is_override else "")
        reason = r.reason + (f" Override: {r.override_reason}" if r.override_reason else "")
        cited = [f"analysis #{r.analysis_snapshot_id}"] if r.analysis_snapshot_id is not None else []
        cited += [f"supersedes #{r.supersedes_id}"] if r.supersedes_id else []
        when = f"{in_utc(r.decided_at):%d %b %Y %H:%M} UTC"
        rows.append(
            [f"#{r.id}", when, r.decided_by, declared(r), said, reason, ", ".join(cited) or display.MISSING]
        )
    columns = ["decision", "when", "by", "declared", "the analysis said", "reason", "evidence"]
    return pd.DataFrame([[md_escape(cell) for cell in row] for row in rows], columns=columns)


def analysis_says(res: Results | None) -> None:
    """Beside the form: the computed verdict, its headline and reasons, and where the evidence is."""
    st.markdown("**What the analysis says**")
    if res is None or res.verdict is None:
        st.info("The analysis has no verdict yet; declaring stores the latest analysis as evidence.")
        return
    VERDICT_BOX.get(res.verdict, st.info)(
        f"**{display.verdict_label(res.verdict)}**  \n{md_escape(res.headline)}"
    )
    if res.reasons:
        st.markdown("\n".join(f"- {md_escape(reason)}" for reason in res.reasons))
    st.page_link("views/overview.py", label="The evidence: results per metric", icon=":material/verified:")


@dataclass(frozen=True)
class Choice:
    """One option of the form: a verdict and, for Ship, the arm that wins."""

    verdict: str
    winner: str | None = None


@dataclass(frozen=True)
class Declaration:
    """What the form holds when submitted."""

    verdict: str
    winner: str | None
    conclude: bool
    reason: str
    override: str


def choices(candidates: list[str]) -> list[Choice]:
    """Ship, one option per candidate arm, then Don't ship and Keep running."""
    return [Choice("ship", arm) for arm in candidates] + [Choice("dont_ship"), Choice("keep_running")]


def recommended_choice(res: Results | None, candidates: list[str]) -> Choice:
    """The option that agrees with the analysis: Ship with its recommended arm, Don't ship for no proven gain,
    Keep running otherwise (also with no analysis yet, or a ship whose arm is not a candidate)."""
    computed = res.verdict if res is not None else None
    agreeing = AGREEING.get(computed or "", "keep_running")
    recommended = res.recommended if res is not None else None
    if agreeing != "ship":
        return Choice(agreeing)
    return Choice("ship", recommended) if recommended in candidates else Choice("keep_running")


def choice_label(choice: Choice, preset: Choice) -> str:
    label = verdict_label(choice.verdict) + (f" {md_escape(choice.winner)}" if choice.winner else "")
    return f"{label} (the analysis' recommendation)" if choice == preset else label


def declaration_form(res: Results | None, candidates: list[str]) -> Declaration | None:
    """The form, preset to the option that agrees with the analysis (`recommended_choice`)."""
    computed = res.verdict if res is not None else None
    options = choices(candidates)
    preset = recommended_choice(res, candidates)
    with st.form("declare", clear_on_submit=False):
        if computed == "invalid":
            st.warning(
                "The analysis is invalid: a health check failed, so the data cannot support Ship or Don't "
                "ship. Fix the data first (the Overview says what to fix) and keep the experiment running."
            )
        choice = st.radio(
            "Decision", options, index=options.index(preset), format_func=lambda c: choice_label(c, preset),
            help=PRESET_HELP,
        )  # fmt: skip
        conclude = st.checkbox(
            "Conclude the experiment with a Ship or Don't ship decision (no more replays)", value=True,
            help="Keep running never concludes.",
        )  # fmt: skip
        reason = st.text_area("Reason (required)")
        override = st.text_area("Override reason (required when the decision differs from the analysis)")
        submitted = st.form_submit_button("Declare", type="primary")
    if not submitted:
        return None
    return Declaration(choice.verdict, choice.winner, conclude, reason, override)


def render(ctx: PageContext) -> None:
    user = current_user()
    experiment = require_experiment(ctx)
    title("Decide", experiment)
    if not user.can_declare:
        st.warning("Only deciders can declare a decision.")
        st.stop()
    pick_up_refresh(experiment)
    row = data.snapshot_row(ctx.database_url, experiment.id)
    if row is not None:
        freshness(ctx, experiment, row.computed_at)
    res = (
        results(row.analysis, experiment.plan) if row is not None and isinstance(row.analysis, dict) else None
    )

    seen_key = SEEN_KEY.format(experiment.id)
    candidates = [arm.name for arm in experiment.arms if arm.role == "candidate"]
    left, right = st.columns([3, 2], gap="large")
    with right:
        analysis_says(res)
    with left:
        form = declaration_form(res, candidates)
    if form is not None:
        try:
            with db_session(ctx.database_url) as session:
                record = declare(
                    session, user=user, experiment_id=experiment.id, verdict=form.verdict, reason=form.reason,
                    winner_arm=form.winner, override_reason=form.override, conclude=form.conclude,
                    expected_current_id=st.session_state.get(seen_key),
                )  # fmt: skip
            note = " (override of the analysis)" if record.is_override else ""
            done = "; the experiment is concluded" if record.evidence.get("concluded") else ""
            st.success(f"Decision #{record.id} recorded: {md_escape(declared(record))}{note}{done}.")
            data.experiments.clear()  # the list and the sidebar show the new status
        except ShadowlabError as exc:  # DecisionError, or the analysis could not run
            st.error(f"Not recorded: {md_escape(str(exc))}")

    with db_session(ctx.database_url) as session:
        records = history(session, experiment.id)
    st.session_state[seen_key] = records[0].id if records else None
    st.subheader("History", anchor=False)
    if not records:
        st.caption("No decision yet.")
        return
    current = records[0]
    st.caption(
        f"Current: #{current.id} {md_escape(declared(current))} by {md_escape(current.decided_by)}. "
        "Decisions are never edited; a new one supersedes the current one."
    )
    st.table(history_frame(records).style.hide(axis="index"))


if __name__ == "__main__":
    run_page(render)
