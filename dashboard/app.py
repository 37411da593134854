"""The dashboard's entry point (`shadowlab dashboard`): read the settings once, pick the experiment, route."""

from __future__ import annotations

import streamlit as st

from dashboard.views import common
from shadowlab.config import load_settings
from shadowlab.errors import ShadowlabError

st.set_page_config(page_title="shadowlab", layout="wide")

try:
    database_url = load_settings().database_url
except ShadowlabError as exc:
    st.error(f"Configuration error: {exc}")
    st.stop()

common.init(database_url)
common.run_page(lambda ctx: common.experiment_picker(ctx.database_url))

navigation = st.navigation(
    [
        st.Page("views/experiments.py", title="Experiments", icon=":material/list:", default=True),
        st.Page("views/overview.py", title="Overview", icon=":material/verified:"),
        st.Page("views/metrics.py", title="Metrics", icon=":material/monitoring:"),
        st.Page("views/side_by_side.py", title="Side by side", icon=":material/compare:"),
        st.Page("views/segments.py", title="Segments & routing", icon=":material/alt_route:"),
        st.Page("views/live.py", title="Live", icon=":material/speed:"),
    ]
)
navigation.run()
