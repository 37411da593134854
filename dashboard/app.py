"""The dashboard's entry point (`shadowlab dashboard`): read the settings once, sign in, pick the experiment,
route. Pages a role may not use are not registered, so they cannot be reached by URL either."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, data
from dashboard.server_logs import configure_server_logging
from dashboard.views import common, login
from shadowlab.config import load_settings
from shadowlab.errors import ShadowlabError

st.set_page_config(page_title="shadowlab", layout="wide")

try:
    settings = load_settings()
    configure_server_logging(settings.log_level, settings.log_format)
    auth_config = auth.auth_config(settings)
except ShadowlabError as exc:
    st.error(f"Configuration error: {exc}")
    st.stop()

problem = data.database_problem(settings.database_url, settings.connect_timeout_s)
if problem is not None:
    st.error(f"The database cannot be used: {problem}")
    st.stop()
common.init(settings.database_url)
user = login.gate(auth_config)
if user is None:
    st.session_state.pop(common.USER_KEY, None)
    st.navigation([login.page(auth_config)]).run()
    st.stop()
common.set_user(user)
login.sidebar(user, auth_config)
common.run_page(lambda ctx: common.experiment_picker(ctx.database_url))

pages = [
    st.Page("views/experiments.py", title="Experiments", icon=":material/list:", default=True),
    st.Page("views/overview.py", title="Overview", icon=":material/verified:"),
    st.Page("views/metrics.py", title="Metrics", icon=":material/monitoring:"),
    st.Page("views/side_by_side.py", title="Side by side", icon=":material/compare:"),
    st.Page("views/segments.py", title="Segments & routing", icon=":material/alt_route:"),
    st.Page("views/live.py", title="Live", icon=":material/speed:"),
    st.Page("views/label.py", title="Label", icon=":material/thumbs_up_down:"),
    st.Page("views/glossary.py", title="Glossary", icon=":material/menu_book:"),
]
if user.can_declare:
    pages.append(st.Page("views/decide.py", title="Decide", icon=":material/gavel:"))
st.navigation(pages).run()
