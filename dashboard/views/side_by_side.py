"""Side by side: the prompt, the control's and a candidate's answers, scores and judge rationales, worst
regressions first, with how many pairs improved, stayed the same or regressed.

Everything captured or generated is untrusted: prompts and rationales are literal text (`untrusted_text`);
answers are Markdown rendered without HTML, links or images, or a word diff of escaped text
(`dashboard.answer_text`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import streamlit as st

from analysis import display
from dashboard import data
from dashboard.answer_text import word_diff_html
from dashboard.answers import AnswerPair, AnswerSide, PairCounts, PairFilter, PairOrder
from dashboard.queries import ArmRow
from dashboard.views.common import (
    PageContext,
    fmt,
    formatted_answer,
    md_escape,
    require_experiment,
    run_page,
    title,
    untrusted_text,
)

PAGE_SIZE = 10
ORDERS: dict[PairOrder, str] = {
    "worst_regression": "Worst regressions first",
    "best_improvement": "Best improvements first",
    "largest_difference": "Largest differences first",
    "request": "In request order",
}
ORDER_HELP = (
    "Worst regressions first: the candidate's failures where the control answered, then the largest score "
    "drops. The score is the chosen scorer's, candidate minus control."
)
VIEWS = {"formatted": "Formatted", "diff": "Word diff", "plain": "Plain text"}
VIEW_HELP = (
    "Formatted: the answers' Markdown (headings, lists, tables, code), without HTML, links or images. "
    "Word diff: words only the control has struck out in red, words only the candidate has in green. "
    "Plain text: exactly what the model returned."
)


def scorer_label(scorer: tuple[str, str], options: Sequence[tuple[str, str]]) -> str:
    """A scorer by its name; the version (a hash) only tells apart two versions of one name."""
    name, version = scorer
    return name if sum(n == name for n, _ in options) == 1 else f"{name} (version {version[:8]})"


def _answer(side: AnswerSide, view: str, diff: str | None) -> None:
    if view == "plain":
        untrusted_text(side.answer, empty="(no answer)")
    elif diff is not None:
        st.html(diff)
    else:
        formatted_answer(side.answer)


def _heading(side: AnswerSide, label: str, scorer: str) -> None:
    st.text(f"{label} · {side.status}" + (f" ({side.error_code})" if side.error_code else ""))
    latency, cost = display.ms(side.latency_ms), display.money(side.cost_usd)
    st.text(f"{scorer} {fmt(side.score, 3)} · latency {latency} · cost {cost}")


def _rationale(side: AnswerSide) -> None:
    if side.rationale:
        st.text("judge rationale:")
        untrusted_text(side.rationale)


def score_change(pair: AnswerPair, scorer: str = "score") -> str:
    """The candidate's score minus the control's, as a heading for the pair."""
    c, t = pair.control.score, pair.candidate.score
    if pair.candidate.status == "error" and pair.control.status == "ok":
        return "candidate failed"
    if pair.control.status == "error" and pair.candidate.status == "ok":
        return "control failed"
    if c is None or t is None:
        return "not scored"
    return f"same {scorer}" if t == c else f"{scorer} {display.points(t - c, sign='always')}"


def show_pair(
    pair: AnswerPair, control: ArmRow, candidate: ArmRow, view: str = "formatted", scorer: str = "score"
) -> None:
    with st.container(border=True):
        where = pair.service + (f" / {pair.route}" if pair.route else "")
        st.text(f"{score_change(pair, scorer)} · request {pair.request_id} · {where}")
        untrusted_text(pair.prompt, empty="(empty prompt)")
        diffs: tuple[str | None, str | None] = (None, None)
        if view == "diff" and pair.control.answer is not None and pair.candidate.answer is not None:
            diffs = word_diff_html(pair.control.answer, pair.candidate.answer)
        sides = ((pair.control, f"Control: {control.name}", diffs[0]),
                 (pair.candidate, f"Candidate: {candidate.name}", diffs[1]))  # fmt: skip
        # A row of columns per part (heading with the scores, answers, rationales): the two answers are
        # seldom of one height, and scores drawn under them sat at different heights.
        for column, (side, label, _) in zip(st.columns(2), sides, strict=True):
            with column:
                _heading(side, label, scorer)
        for column, (side, _, diff) in zip(st.columns(2), sides, strict=True):
            with column:
                _answer(side, view, diff)
        if pair.control.rationale or pair.candidate.rationale:
            for column, (side, _, _) in zip(st.columns(2), sides, strict=True):
                with column:
                    _rationale(side)


def show_counts(counts: PairCounts) -> None:
    """Braintrust's summary: pairs improved / same / regressed on the chosen scorer."""
    cols = st.columns(4)
    help_text = (
        "Pairs of this candidate and segment, by the chosen scorer: candidate's score vs the control's."
    )
    cols[0].metric("Improved", display.count(counts.improved), help=help_text)
    cols[1].metric("Same score", display.count(counts.same), help=help_text)
    cols[2].metric("Regressed", display.count(counts.regressed), help=help_text)
    cols[3].metric("Not scored", display.count(counts.unscored), help="A side failed or has no score.")


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
    opts = st.columns([2, 3, 1])
    order: PairOrder = opts[0].selectbox(
        "Order", list(ORDERS), format_func=ORDERS.__getitem__, key="sbs_order", help=ORDER_HELP
    )
    view = opts[1].segmented_control(
        "Answers as", list(VIEWS), format_func=VIEWS.__getitem__, default="formatted", key="sbs_view",
        help=VIEW_HELP,
    ) or "formatted"  # fmt: skip
    page = int(opts[2].number_input("Page", min_value=1, value=1, step=1, key="sbs_page"))
    filters = st.columns([2, 3, 1], vertical_alignment="bottom")
    disagreement = filters[0].checkbox("Only disagreements", key="sbs_disagree")
    gap = filters[1].number_input("Score gap counted as disagreement", 0.0, 10.0, 2.0, 0.5, key="sbs_gap")

    pair_filter = PairFilter(
        control_arm_id=control.id,
        candidate_arm_id=int(candidate_id),
        scorer=scorer,
        service=segment[0] if segment else None,
        route=(segment[1] or None) if segment else None,
        disagreement_only=disagreement,
        min_score_gap=float(gap),
        order=order,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    if scorer is not None:
        # over every pair of the candidate and segment: one cache entry whatever the page and order
        show_counts(data.pair_counts(ctx.database_url, replace(pair_filter, order="request", offset=0)))
    pairs = data.answer_pairs(ctx.database_url, pair_filter)
    if not pairs:
        st.info("No answer pairs match these filters on this page.")
        return
    for pair in pairs:
        show_pair(pair, control, by_id[int(candidate_id)], view, scorer[0] if scorer else "score")


if __name__ == "__main__":
    run_page(render)
