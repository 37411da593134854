"""Overview (the results page): the verdict in plain words, the results table, progress, health, power.

A product manager reads the banner and the table; the decision rule's own sentences, the health checks'
statistics and the power numbers are one click away for engineers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pandas as pd
import streamlit as st

from analysis import display
from analysis.decision import CHANCE_OF_DECISION
from analysis.glossary import TERMS
from analysis.plan import DecisionPlan, PlanError
from analysis.rule_mde import column_roles, mde_words
from analysis.stats.results import MetricKind
from analysis.summary import Results, health_name, results
from dashboard import data
from dashboard.queries import ArmRow, ExperimentRow
from dashboard.snapshot import ComparisonView, SnapshotView, projected_mde
from dashboard.views.common import (
    VERDICT_BOX,
    PageContext,
    column_guide,
    in_utc,
    md_escape,
    require_experiment,
    require_snapshot,
    run_page,
    title,
)

_STATUS_MARK = {"pass": "✓ pass", "fail": "✗ fail", "pending": "○ not yet"}
_STATUS_COLOUR = {"pass": "#d7f3dd", "fail": "#f9d6d5", "pending": "#fff1c2"}
_CANDIDATE_SAYS = {"pass": "passes", "fail": "fails", "pending": "not decided yet"}
RESULT_COLUMNS = {
    "Metric": "What is measured, and its role in the plan: the goal must clearly improve; a guardrail may "
    "get worse only by its allowed change; other metrics block only when clearly worse than a practical "
    "margin.",
    "Status": "pass: the condition holds; fail: it is clearly broken; not yet: more data is needed.",
    "Control": "The control's level (geometric mean for latency, the 95th percentile for p95 rows). For "
    "'Preferred over control', 50 %: the control judged against itself is a tie.",
    "Candidate": "The candidate's level on the same prompts.",
    "Change": "Candidate minus control, in the metric's unit, and relative to the control.",
    "95 % interval": "Where the true change lies with 95 % confidence; the decision rule judges this "
    "interval (always valid for sequential plans, so looking often is fine).",
    "Allowed": "How much worse the metric may get and still ship (the plan's margin; for metrics the plan "
    "does not name, the practical margin).",
}
HEALTH_COLUMNS = {
    "check": "What is checked so that the comparison is fair.",
    "result": "passed, FAILED (no verdict should rest on these numbers), or not applicable.",
    "p": "The check's p-value, where it is a test: its evidence against 'all is well'. Each check has its "
    "own threshold, named in its detail: the A/A check fails only below 0.001 (or the plan's α if smaller), "
    "after adjusting across metrics, so a p of 0.004 there passes.",
    "detail": "What the check found.",
}
_ROLE_SUFFIX = {"goal": " (goal)", "guardrail": " (guardrail)", "no harm": ""}


def arms_sentence(arms: Sequence[ArmRow]) -> str:
    """Which models are compared, for the reader who knows them by model and not by arm name (Markdown)."""

    def named(role: str, model: bool = True) -> str:
        return ", ".join(
            f"**{md_escape(a.name)}**" + (f" ({md_escape(f'{a.provider} {a.model}')})" if model else "")
            for a in arms
            if a.role == role
        )

    control, candidates, copies = named("control"), named("candidate"), named("aa", model=False)
    if not control or not candidates:
        return ""
    return f"Control: {control} · candidates: {candidates}" + (
        f" · A/A copy of the control: {copies}" if copies else ""
    )


def verdict_card(res: Results, snap: SnapshotView) -> None:
    """The banner: the verdict's label and one plain sentence; the reasons below; the rule's text folded."""
    with st.container(border=True):
        if res.verdict is None:
            st.info(res.headline)
            return
        box = VERDICT_BOX.get(res.verdict, st.info)
        box(f"**Verdict: {display.verdict_label(res.verdict)}**  \n{md_escape(res.headline)}")
        cols = st.columns(3)
        cols[0].metric(
            "Recommended",
            md_escape(res.recommended) if res.recommended else "none",
            help="The candidate the analysis recommends switching to (the cheapest that passes), if any.",
        )
        more = snap.verdict.more_prompts if snap.verdict is not None else None
        cols[1].metric(
            "More prompts needed",
            f"≈ {display.count(more)}" if more else "none",
            help=f"Prompts still needed for {CHANCE_OF_DECISION}, from today's effects.",
        )
        cols[2].metric(
            "Prompts analysed",
            display.count(snap.n_requests),
            help="Captured prompts replayed on every arm and analysed in this snapshot.",
        )
        if res.reasons:
            st.markdown("\n".join(f"- {md_escape(reason)}" for reason in res.reasons))
        with st.expander("The decision rule's exact reasons (for engineers)"):
            for reason in res.rule_reasons:
                st.text(f"• {reason}")
            if snap.verdict is not None and snap.verdict.design:
                st.caption(
                    f"Design: {md_escape(snap.verdict.design)} (always-valid intervals when sequential)."
                )
        # the time zone always said ('08:28' alone on SQLite), and prompts, as every other line says
        st.caption(f"Computed {in_utc(snap.computed_at):%d %b %Y %H:%M} UTC on {snap.n_requests:,} prompts.")


def results_frame(res: Results, candidate: str) -> pd.DataFrame:
    """One candidate's rows of the results table: every number carries its unit or a %."""
    rows = []
    for r in res.rows:
        if r.candidate != candidate:
            continue
        change = r.change if r.change_pct == display.MISSING else f"{r.change} ({r.change_pct})"
        rows.append([f"{r.name}{_ROLE_SUFFIX[r.role]}", _STATUS_MARK.get(r.status, r.status_label),
                     r.control, r.value, change, r.interval, r.allowed])  # fmt: skip
    # st.table renders its cells as Markdown: a metric named by the plan is user text, and two dollar
    # amounts in one cell would read as LaTeX.
    return pd.DataFrame([[md_escape(cell) for cell in row] for row in rows], columns=list(RESULT_COLUMNS))


def _colour_status(value: str) -> str:
    status = next((k for k, mark in _STATUS_MARK.items() if md_escape(mark) == value), None)
    return f"background-color: {_STATUS_COLOUR[status]}" if status else ""


def results_table(res: Results) -> None:
    """A static table per candidate: it wraps long cells instead of cutting them, so all of it reads at
    1280 px; what each column means is one click away."""
    if not res.rows:
        st.info("The analysis has no comparisons yet (no metric with complete pairs).")
        return
    column_guide(RESULT_COLUMNS, "Goal", "Guardrail", "Margin", "Always-valid interval",
                 label="How to read these tables")  # fmt: skip
    for candidate, status in res.statuses:
        says = _CANDIDATE_SAYS.get(status, "")
        st.markdown(f"**{md_escape(candidate)}** vs the control" + (f": {says}" if says else ""))
        frame = results_frame(res, candidate)
        st.table(frame.style.map(_colour_status, subset=["Status"]).hide(axis="index"))


def health_frame(snap: SnapshotView) -> pd.DataFrame:
    # no-break spaces: a narrow column broke '✓ passed' over two lines
    mark = {True: "✓\u00a0passed", False: "✗\u00a0FAILED", None: "not\u00a0applicable"}
    return pd.DataFrame(
        [
            {
                "check": health_name(h.name),
                "result": mark[h.passed],
                "p": display.p_value(h.p_value),
                "detail": h.detail,
            }
            for h in snap.health
        ],
        columns=["check", "result", "p", "detail"],
    )


def _mde(c: ComparisonView, value: float | None) -> str:
    """An MDE on the estimate's scale, in the metric's unit."""
    if value is None:
        return display.MISSING
    if c.kind == "latency":
        return display.percent(value - 1, sign="always")
    if c.kind == "cost":
        return display.money(value)
    if c.kind in ("binary", "preference"):
        return display.points(100 * value, unit="pp")
    return display.points(value)


def _mde_planned(c: ComparisonView, target_n: int | None) -> float | None:
    """The analysis' MDE at the planned sample; a snapshot from before it wrote one scales its MDE."""
    if c.mde_test is not None:
        return c.mde_planned
    return projected_mde(c.mde, c.n, target_n, c.kind) if target_n else None


def _roles(plan: Mapping[str, Any] | None, snap: SnapshotView) -> dict[str, str]:
    """Each compared metric's role in the plan, as the MDE follows it ({} without a readable plan)."""
    try:
        decision = DecisionPlan.from_dict(plan or {})
    except PlanError:
        return {}
    kinds = {c.metric: cast(MetricKind, c.kind) for c in snap.comparisons}
    return {
        column: role.replace("other", "no harm") for column, role in column_roles(decision, kinds).items()
    }


def power_frame(
    snap: SnapshotView, target_n: int | None, plan: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    roles = _roles(plan, snap)
    rows = [
        {
            "metric": display.metric_name(c.metric) + _ROLE_SUFFIX.get(roles.get(c.metric, "no harm"), ""),
            "candidate": c.candidate,
            "pairs": display.count(c.n),
            "MDE now": _mde(c, c.mde),
            "MDE at planned n (approx.)": _mde(c, _mde_planned(c, target_n)),
        }
        for c in snap.comparisons
    ]
    return pd.DataFrame(
        rows, columns=["metric", "candidate", "pairs", "MDE now", "MDE at planned n (approx.)"]
    )


def power_words(snap: SnapshotView) -> str:
    """Which test the MDEs are for (the plan's), and that the planned figure assumes today's variance."""
    tested = next((c for c in snap.comparisons if c.mde_test is not None), None)
    if tested is None:  # written before the MDE followed the plan: a single-look two-sided test
        return (
            "MDE of a single-look two-sided test: the decision rule may need a larger effect (analyse again "
            "for the rule's own). At planned n: scaled from today's variance."
        )
    return mde_words(tested.mde_test, tested.mde_planned_n)


def eta_text(experiment: ExperimentRow, snap: SnapshotView, requests_per_hour: float) -> str:
    target = experiment.target_requests
    if snap.verdict is not None and snap.verdict.verdict in ("ship", "dont_ship", "inconclusive"):
        return "decided"
    if snap.verdict is not None and snap.verdict.verdict == "invalid":
        return "fix the data first"
    more = snap.verdict.more_prompts if snap.verdict is not None else None
    if more is None and target is None:
        return "no planned sample size"
    remaining = more if more is not None else max(0, (target or 0) - snap.n_requests)
    if remaining == 0:
        return "planned sample reached"
    if requests_per_hour <= 0:
        return f"{remaining:,} prompts to go; none replayed in the last hour"
    hours = remaining / requests_per_hour
    when = datetime.now(UTC) + timedelta(hours=hours)
    return f"≈ {timedelta(seconds=round(hours * 3600))} (around {when:%d %b %H:%M} UTC)"


def progress(ctx: PageContext, experiment: ExperimentRow, snap: SnapshotView) -> None:
    plan = experiment.plan or {}
    target = experiment.target_requests
    live = data.live_stats(ctx.database_url, experiment.id)
    per_hour = live.replays_last_hour / max(1, len(experiment.arms))
    cols = st.columns(3)
    cols[0].metric(
        "Minimum sample",
        display.count(plan["min_sample"]) if "min_sample" in plan else display.MISSING,
        help="No verdict is given before this many complete prompts.",
    )
    cols[1].metric(
        "Planned sample",
        display.count(target) if target else display.MISSING,
        help="The plan's maximum: at this many prompts without a clear answer the verdict is Inconclusive.",
    )
    cols[2].metric(
        "Estimated time to decision",
        eta_text(experiment, snap, per_hour),
        help="From the prompts still needed and the last hour's replay rate.",
    )
    if target:
        st.progress(
            min(1.0, snap.n_requests / target),
            text=f"{snap.n_requests:,} of {target:,} planned prompts analysed",
        )


def render(ctx: PageContext) -> None:
    experiment = require_experiment(ctx)
    title("Overview", experiment)
    if compared := arms_sentence(experiment.arms):
        st.caption(compared)
    snap = require_snapshot(ctx, experiment)
    row = data.snapshot_row(ctx.database_url, experiment.id)
    res = results(row.analysis if row is not None else {}, experiment.plan)
    verdict_card(res, snap)
    if snap.health_passed is False:
        failed = ", ".join(health_name(h.name) for h in snap.health if h.passed is False)
        st.warning(
            f"A health check failed ({md_escape(failed)}): the numbers below may be biased and no verdict "
            "should rest on them. The health checks at the bottom say what to fix."
        )

    st.subheader("Results per candidate", anchor=False)
    results_table(res)
    progress(ctx, experiment, snap)

    with st.expander("Health checks", expanded=snap.health_passed is False):
        frame = health_frame(snap)
        if frame.empty:
            st.info("The analysis recorded no health checks.")
        else:
            # A static table: 'detail' (what was found) wraps instead of being cut at 1280 px.
            st.table(frame.map(md_escape).style.hide(axis="index"))
            column_guide(HEALTH_COLUMNS, "Health checks", "A/A check (noise floor)", "p-value")
    with st.expander("Power: the smallest effect the decision rule detects (80 % power)"):
        st.dataframe(
            power_frame(snap, experiment.target_requests, experiment.plan),
            hide_index=True,
            height="content",
            column_config={
                "MDE now": st.column_config.TextColumn(
                    "MDE now", help=TERMS["Minimum detectable effect (MDE)"]
                ),
            },
        )
        st.caption(md_escape(power_words(snap)))
        plan = experiment.plan or {}
        primary = plan.get("primary_metric")
        if primary:
            alpha = snap.alpha or plan.get("alpha")
            st.caption(
                f"Goal metric: {md_escape(display.metric_name(str(primary)))}. "
                f"Significance level {md_escape(display.significant(float(alpha), 2)) if alpha else '—'}."
            )


if __name__ == "__main__":
    run_page(render)
