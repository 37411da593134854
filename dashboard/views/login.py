"""Sign in: the gate the router runs first, the login form, and the sidebar's who-am-I and sign out.

The session keeps only a `Login` (name, role, expiry). The password lives in a form that is cleared on
submit; it is checked against the bcrypt hash and never stored or logged. Any failure reads the same
("Wrong user name or password."), and repeated failures per name and per client are throttled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import streamlit as st

from dashboard.auth import (
    LOCAL_USER,
    AuthConfig,
    AuthError,
    Login,
    LoginThrottle,
    User,
    check_session,
    sign_in,
    start_session,
    user_from_header,
)
from dashboard.views.common import USER_KEY, md_escape

LOGIN_KEY = "login"
NOTICE_KEY = "login_notice"  # why the person has to sign in again (expired, removed)


@st.cache_resource
def _throttle() -> LoginThrottle:
    """One throttle per dashboard process, shared by every browser session."""
    return LoginThrottle()


def gate(config: AuthConfig) -> User | None:
    """The user of this run, or None when the login page must be shown (stops on a proxy failure)."""
    if config.mode == "off":
        return User(LOCAL_USER, "decider")
    if config.mode == "header":
        try:
            return user_from_header(st.context.headers, config)
        except AuthError as exc:
            st.error(md_escape(str(exc)))
            st.stop()
    login = st.session_state.get(LOGIN_KEY)
    if not isinstance(login, Login):
        return None
    try:
        return check_session(login, config.accounts, datetime.now(UTC))
    except AuthError as exc:
        sign_out(notice=str(exc))
        return None


def sign_out(notice: str | None = None) -> None:
    for key in (LOGIN_KEY, USER_KEY):
        st.session_state.pop(key, None)
    if notice:
        st.session_state[NOTICE_KEY] = notice


def render(config: AuthConfig) -> None:
    st.header("Sign in to shadowlab", anchor=False)
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.warning(md_escape(notice))
    with st.form("sign_in_form", clear_on_submit=True):
        name = st.text_input("User name", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    try:
        user = sign_in(config.accounts, _throttle(), name, password, st.context.ip_address)
    except AuthError as exc:
        st.error(md_escape(str(exc)))
        return
    st.session_state[LOGIN_KEY] = start_session(user, config.session_minutes, datetime.now(UTC))
    st.rerun()


def page(config: AuthConfig) -> st.Page:
    """The only page shown before signing in."""
    return st.Page(partial(render, config), title="Sign in", icon=":material/login:", url_path="login")


def sidebar(user: User, config: AuthConfig) -> None:
    """Who is signed in, and a way out."""
    if config.mode == "off":
        st.sidebar.warning("Authentication is off (local mode): everyone here may declare decisions.")
        return
    st.sidebar.caption(f"Signed in as {md_escape(user.name)} ({user.role})")
    if config.mode == "password" and st.sidebar.button("Sign out"):
        sign_out()
        st.rerun()
