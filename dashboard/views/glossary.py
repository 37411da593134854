"""Glossary: the terms on these pages in plain words (from `analysis.glossary`, as the tooltips)."""

from __future__ import annotations

import streamlit as st

from analysis.display import metric_name
from analysis.glossary import METRICS, TERMS
from dashboard.views.common import PageContext, run_page, title


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
    st.subheader("Metrics", anchor=False)
    st.markdown("\n".join(f"- **{metric_name(column)}**: {meaning}" for column, meaning in METRICS.items()))


if __name__ == "__main__":
    run_page(render)
