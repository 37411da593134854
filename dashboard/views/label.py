"""Blind labelling: two answers (formatted Markdown, no HTML) in a per-item random order, arms hidden; keys
1 / T / 2 choose.

Progress counts control-vs-candidate pairs (an A/A copy of the control is not a candidate). Agreement with
the judge appears once the person has labelled AGREEMENT_AFTER pairs (or all of them): early enough to be
seen, late enough that it cannot sway many of their labels.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session

from dashboard.views.common import (
    PageContext,
    current_user,
    db_session,
    formatted_answer,
    require_experiment,
    run_page,
    title,
    untrusted_text,
)
from scoring.labels import Choice, LabelItem, judge_human_agreement, next_label_item, record_label
from shadowlab import store

AGREEMENT_AFTER = 30  # labels by this person before the judge's agreement is shown
CHOICES: tuple[tuple[Choice, str, str], ...] = (
    ("first", "Answer 1 is better", "1"),
    ("tie", "Tie", "T"),
    ("second", "Answer 2 is better", "2"),
)


def agreement_frame(session: Session, experiment_id: int) -> pd.DataFrame:
    """Cohen's kappa between all human labels and each pairwise judge version."""
    judges = store.scorers.pairwise_judges(experiment_id, session=session)
    rows = [
        {"judge": name, "version": version, "labels compared": k.n, "kappa": _kappa(k.kappa),
         "95 % interval": f"{_kappa(k.ci_low)} to {_kappa(k.ci_high)}"}
        for name in judges
        for version, k in judge_human_agreement(session, experiment_id, name).items()
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["judge", "version", "labels compared", "kappa", "95 % interval"])


def _kappa(value: float) -> str:
    return "undefined" if not math.isfinite(value) else f"{value:.2f}"


def show_agreement(session: Session, experiment_id: int) -> None:
    st.subheader("Agreement with the judge", anchor=False)
    frame = agreement_frame(session, experiment_id)
    if frame.empty:
        st.info("No pairwise judge has rated pairs you labelled: no agreement to show.")
        return
    st.dataframe(frame, hide_index=True)
    st.caption(
        "Cohen's kappa over every person's labels: 1 is perfect agreement, 0 is chance. With a few dozen "
        "labels its interval is wide (about ±0.3 at 30 labels, ±0.15 at 150), so read the interval, not the "
        "point."
    )


def show_item(item: LabelItem) -> Choice | None:
    """The prompt, the two answers side by side, and the choice buttons; returns the choice clicked."""
    st.caption("Prompt")
    untrusted_text(item.prompt)
    # Formatted as a user would read them (as Side by side shows them first); never HTML, links or images.
    for column, number, text in zip(st.columns(2), (1, 2), (item.first, item.second), strict=True):
        with column:
            st.caption(f"Answer {number}")
            formatted_answer(text)
    st.text_input("Comment (optional)", key=f"comment-{item.captured_request_id}-{item.arm_b_id}")
    chosen: Choice | None = None
    for column, (choice, label, key) in zip(st.columns(len(CHOICES)), CHOICES, strict=True):
        # The key names the item, so a click meant for an item that changed meanwhile is dropped.
        if column.button(
            label, shortcut=key, key=f"label-{choice}-{item.captured_request_id}-{item.arm_b_id}",
            use_container_width=True,
        ):  # fmt: skip
            chosen = choice
    return chosen


def render(ctx: PageContext) -> None:
    user = current_user()
    experiment = require_experiment(ctx)
    title("Blind labelling", experiment)
    with db_session(ctx.database_url) as session:
        total = store.replays.candidate_pairs(experiment.id, session=session)
        done = store.labels.candidate_count(experiment.id, user.name, session=session)
        item = next_label_item(session, experiment.id, user.name)
    if total == 0:
        st.info("No pairs to label yet: both the control and a candidate must have answered a request.")
        return
    st.progress(min(1.0, done / total), text=f"{done:,} of {total:,} pairs labelled by you")
    if item is None:
        st.success(f"You have labelled all {total:,} pairs of this experiment. Thank you.")
    else:
        st.caption(
            "Which answer is better? Keys: 1, T (tie), 2. The arms are hidden and the order is random."
        )
        choice = show_item(item)
        if choice is not None:
            comment = st.session_state.get(f"comment-{item.captured_request_id}-{item.arm_b_id}") or None
            with db_session(ctx.database_url) as session:
                record_label(session, experiment.id, item, user.name, choice, comment)
            st.rerun()
    if item is None or done >= AGREEMENT_AFTER:
        with db_session(ctx.database_url) as session:
            show_agreement(session, experiment.id)
    else:
        st.caption(f"Agreement with the judge is shown after you have labelled {AGREEMENT_AFTER} pairs.")


if __name__ == "__main__":
    run_page(render)
