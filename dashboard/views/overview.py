"""Overview: the verdict and its reasons in plain words, health checks, sample size, power and ETA."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.queries import ExperimentRow
from dashboard.snapshot import SnapshotView, projected_mde
from dashboard.views.common import (
    PageContext,
    fmt,
    md_escape,
    require_experiment,
    require_snapshot,
    run_page,
    title,
)

_VERDICT_BOX = {
    "ship": st.success,
    "dont_ship": st.error,
    "keep_running": st.info,
    "inconclusive": st.warning,
    "invalid": st.warning,
}


def verdict_card(snap: SnapshotView) -> None:
    with st.container(border=True):
        if snap.verdict is None:
            st.info("No verdict: the analysis ran without a pre-registered plan, so it reports effects only.")
            return
        box = _VERDICT_BOX.get(snap.verdict.verdict, st.info)
        box(f"Verdict: {snap.verdict.label}")
        for reason in snap.verdict.reasons:
            st.text(f"• {reason}")
        if snap.verdict.recommended:
            st.text(f"recommended arm: {snap.verdict.recommended}")
        if snap.verdict.more_prompts:
            st.text(f"about {snap.verdict.more_prompts:,} more prompts needed")
        if snap.verdict.design:
            st.caption(f"Design: {md_escape(snap.verdict.design)} (always-valid intervals when sequential).")
        st.caption(f"Computed {snap.computed_at:%Y-%m-%d %H:%M %Z} on {snap.n_requests:,} requests.")


def health_frame(snap: SnapshotView) -> pd.DataFrame:
    mark = {True: "passed", False: "FAILED", None: "not applicable"}
    return pd.DataFrame(
        [
            {"check": h.name, "result": mark[h.passed], "p value": h.p_value, "detail": h.detail}
            for h in snap.health
        ],
        columns=["check", "result", "p value", "detail"],
    )


def checks_frame(snap: SnapshotView) -> pd.DataFrame:
    columns = ["candidate", "check", "status", "estimate", "ci_low", "ci_high", "detail"]
    checks = snap.verdict.checks if snap.verdict is not None else ()
    return pd.DataFrame(
        [[c.candidate, c.name, c.status, c.estimate, c.ci_low, c.ci_high, c.detail] for c in checks],
        columns=columns,
    )


def power_frame(snap: SnapshotView, target_n: int | None) -> pd.DataFrame:
    rows = [
        {
            "metric": c.metric,
            "candidate": c.candidate,
            "pairs": c.n,
            "MDE now": c.mde,
            "MDE at planned n (approx.)": projected_mde(c.mde, c.n, target_n, c.kind) if target_n else None,
        }
        for c in snap.comparisons
    ]
    return pd.DataFrame(
        rows, columns=["metric", "candidate", "pairs", "MDE now", "MDE at planned n (approx.)"]
    )


def eta_text(experiment: ExperimentRow, snap: SnapshotView, requests_per_hour: float) -> str:
    target = experiment.target_requests
    if snap.verdict is not None and snap.verdict.verdict in ("ship", "dont_ship", "inconclusive"):
        return "decided"
    more = snap.verdict.more_prompts if snap.verdict is not None else None
    if more is None and target is None:
        return "no planned sample size"
    remaining = more if more is not None else max(0, (target or 0) - snap.n_requests)
    if remaining == 0:
        return "planned sample reached"
    if requests_per_hour <= 0:
        return f"{remaining:,} requests to go; no replays in the last hour"
    hours = remaining / requests_per_hour
    return f"≈ {timedelta(seconds=round(hours * 3600))} at the last hour's rate"


def render(ctx: PageContext) -> None:
    experiment = require_experiment(ctx)
    title("Overview", experiment)
    snap = require_snapshot(ctx, experiment)
    verdict_card(snap)

    plan = experiment.plan or {}
    target = experiment.target_requests
    live = data.live_stats(ctx.database_url, experiment.id)
    per_hour = live.replays_last_hour / max(1, len(experiment.arms))
    cols = st.columns(4)
    cols[0].metric("Requests analysed", f"{snap.n_requests:,}")
    cols[1].metric("Minimum sample", f"{plan['min_sample']:,}" if "min_sample" in plan else "—")
    cols[2].metric("Planned sample", f"{target:,}" if target else "—")
    cols[3].metric("Estimated time to decision", eta_text(experiment, snap, per_hour))
    if target:
        st.progress(min(1.0, snap.n_requests / target), text=f"{snap.n_requests:,} of {target:,} requests")

    checks = checks_frame(snap)
    if not checks.empty:
        st.subheader("Decision rule, per candidate", anchor=False)
        st.dataframe(checks, hide_index=True)

    st.subheader("Health checks", anchor=False)
    if snap.health_passed is False:
        st.warning("A health check failed: the effects below may be biased; no verdict should rest on them.")
    frame = health_frame(snap)
    if frame.empty:
        st.info("The analysis recorded no health checks.")
    else:
        st.dataframe(frame, hide_index=True)

    st.subheader("Power: minimum detectable effect (80 % power)", anchor=False)
    st.dataframe(power_frame(snap, target), hide_index=True)
    primary = plan.get("primary_metric")
    if primary:
        st.caption(
            f"Primary metric: {md_escape(str(primary))}. Alpha {fmt(snap.alpha or plan.get('alpha'))}."
        )


if __name__ == "__main__":
    run_page(render)
