"""Side by side: the prompt, the control's and a candidate's answers, scores and judge rationales.

Everything captured or generated is untrusted and shown as literal text (`untrusted_text`).
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from analysis import display
from dashboard import data
from dashboard.answers import AnswerPair, AnswerSide, PairFilter
from dashboard.queries import ArmRow
from dashboard.views.common import (
    PageContext,
    fmt,
    md_escape,
    require_experiment,
    run_page,
    title,
    untrusted_text,
)

PAGE_SIZE = 10
_ORDERS = {"request": "In request order", "worst_regression": "Worst regressions first"}


def scorer_label(scorer: tuple[str, str], options: Sequence[tuple[str, str]]) -> str:
    """A scorer by its name; the version (a hash) only tells apart two versions of one name."""
    name, version = scorer
    return name if sum(n == name for n, _ in options) == 1 else f"{name} (version {version[:8]})"


def _side(column: st.delta_generator.DeltaGenerator, label: str, side: AnswerSide) -> None:
    with column:
        st.text(f"{label} · {side.status}" + (f" ({side.error_code})" if side.error_code else ""))
        untrusted_text(side.answer, empty="(no answer)")
        latency, cost = display.ms(side.latency_ms), display.money(side.cost_usd)
        st.text(f"score {fmt(side.score, 3)} · latency {latency} · cost {cost}")
        if side.rationale:
            st.text("judge rationale:")
            untrusted_text(side.rationale)


def show_pair(pair: AnswerPair, control: ArmRow, candidate: ArmRow) -> None:
    with st.container(border=True):
        st.text(f"request {pair.request_id} · {pair.service}" + (f" / {pair.route}" if pair.route else ""))
        untrusted_text(pair.prompt, empty="(empty prompt)")
        left, right = st.columns(2)
        _side(left, f"control {control.name}", pair.control)
        _side(right, f"candidate {candidate.name}", pair.candidate)


def render(ctx: PageContext) -> None:
    experiment = require_experiment(ctx)
    title("Side by side", experiment)
    control = next((a for a in experiment.arms if a.role == "control"), None)
    candidates = [a for a in experiment.arms if a.role != "control"]
    if control is None or not candidates:
        st.info("This experiment needs a control arm and at least one other arm to compare answers.")
        return
    if experiment.replays == 0:
        st.info(f"Experiment {md_escape(repr(experiment.name))} has no replays yet: no answers to compare.")
        return
    by_id = {a.id: a for a in candidates}
    cols = st.columns(3)
    candidate_id = cols[0].selectbox(
        "Candidate", list(by_id), format_func=lambda i: by_id[i].name, key="sbs_cand"
    )
    scorer_options = data.scorers(ctx.database_url, experiment.id)
    scorer = cols[1].selectbox(
        "Scores from",
        scorer_options,
        format_func=lambda s: scorer_label(s, scorer_options),
        index=0 if scorer_options else None,
        key="sbs_scorer",
        placeholder="no scores yet",
    )
    segment_options = data.segments(ctx.database_url, experiment.id)
    segment = cols[2].selectbox(
        "Segment (service / route)", [None, *segment_options], key="sbs_segment",
        format_func=lambda s: "all" if s is None else (f"{s[0]} / {s[1]}" if s[1] else s[0]),
    )  # fmt: skip
    opts = st.columns(3)
    disagreement = opts[0].checkbox("Only disagreements", key="sbs_disagree")
    gap = opts[1].number_input("Score gap counted as disagreement", 0.0, 10.0, 2.0, 0.5, key="sbs_gap")
    order = opts[2].radio(
        "Order", list(_ORDERS), format_func=_ORDERS.__getitem__, key="sbs_order", horizontal=True
    )
    page = int(st.number_input("Page", min_value=1, value=1, step=1, key="sbs_page"))

    pair_filter = PairFilter(
        control_arm_id=control.id,
        candidate_arm_id=int(candidate_id),
        scorer=scorer,
        service=segment[0] if segment else None,
        route=(segment[1] or None) if segment else None,
        disagreement_only=disagreement,
        min_score_gap=float(gap),
        order="worst_regression" if order == "worst_regression" else "request",
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    pairs = data.answer_pairs(ctx.database_url, pair_filter)
    if not pairs:
        st.info("No answer pairs match these filters on this page.")
        return
    for pair in pairs:
        show_pair(pair, control, by_id[int(candidate_id)])


if __name__ == "__main__":
    run_page(render)
