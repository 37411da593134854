"""Glossary: the terms on these pages in plain words (from `analysis.glossary`, as the tooltips), and the
chosen experiment's metrics by the names its pages show."""

from __future__ import annotations

import streamlit as st

from analysis.glossary import TERMS
from dashboard import data
from dashboard.snapshot import SnapshotError, SnapshotView
from dashboard.views.common import PageContext, md_escape, metric_glossary, run_page, title


def _analysis(ctx: PageContext) -> tuple[str, SnapshotView] | None:
    """The chosen experiment's name and latest analysis, if it has a readable one."""
    if ctx.experiment_id is None:
        return None
    experiment = data.experiment(ctx.database_url, ctx.experiment_id)
    try:
        snap = data.snapshot(ctx.database_url, ctx.experiment_id) if experiment is not None else None
    except SnapshotError:  # the other pages say why; the words still mean the same
        snap = None
    return None if experiment is None or snap is None else (experiment.name, snap)


def render(ctx: PageContext) -> None:
    title("Glossary")
    st.caption("What the words on the results pages mean, for people who do not run experiments every day.")
    left, right = st.columns(2, gap="large")
    terms = list(TERMS.items())
    half = (len(terms) + 1) // 2
    for column, part in ((left, terms[:half]), (right, terms[half:])):
        with column:
            for term, meaning in part:
                st.markdown(f"**{term}**  \n{meaning}")
    analysis = _analysis(ctx)
    st.subheader("Metrics" if analysis is None else f"Metrics of {md_escape(analysis[0])}", anchor=False)
    st.markdown("\n".join(f"- {line}" for line in metric_glossary(None if analysis is None else analysis[1])))


if __name__ == "__main__":
    run_page(render)
