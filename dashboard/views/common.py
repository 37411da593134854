"""What every page shares: the database URL and chosen experiment, safe text, friendly failures."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import streamlit as st
from sqlalchemy.orm import Session

from dashboard import data
from dashboard.auth import User
from dashboard.queries import ExperimentRow
from dashboard.snapshot import SnapshotError, SnapshotView
from shadowlab.db import session_factory, session_scope
from shadowlab.errors import ShadowlabError

DATABASE_URL_KEY = "database_url"
EXPERIMENT_KEY = "experiment_id"
CHOSEN_KEY = "experiment_chosen"  # an experiment picked on a page, applied to the sidebar on the next run
# The box a verdict is shown in: green to switch, red not to, blue to wait, amber when the data or the
# sample cannot settle it.
VERDICT_BOX: dict[str, Callable[..., Any]] = {
    "ship": st.success,
    "dont_ship": st.error,
    "keep_running": st.info,
    "inconclusive": st.warning,
    "invalid": st.warning,
}
USER_KEY = "user"  # the signed-in `User` (name and role) of this run, set by the router after the gate


@dataclass(frozen=True)
class PageContext:
    database_url: str
    experiment_id: int | None


def init(database_url: str) -> None:
    """Called by the router on every run: remember where the data lives."""
    st.session_state[DATABASE_URL_KEY] = database_url


def set_user(user: User) -> None:
    st.session_state[USER_KEY] = user


def current_user() -> User:
    """The user the router let in on this run (pages are only reachable after the gate)."""
    user = st.session_state.get(USER_KEY)
    if not isinstance(user, User):
        st.error("Not signed in.")
        st.stop()
    return user


def db_session(database_url: str) -> AbstractContextManager[Session]:
    """One transaction on the cached engine, for the pages that write (labels, decisions)."""
    return session_scope(session_factory(data.engine(database_url)))


def page_context() -> PageContext:
    return PageContext(st.session_state[DATABASE_URL_KEY], st.session_state.get(EXPERIMENT_KEY))


def experiment_picker(database_url: str) -> None:
    """The sidebar's experiment choice, shared by every page through session state."""
    rows = data.experiments(database_url)
    if not rows:
        return
    names = {row.id: row.name for row in rows}
    chosen = st.session_state.pop(CHOSEN_KEY, None)
    if chosen in names:  # before the selectbox exists: a widget's value cannot change after it is drawn
        st.session_state[EXPERIMENT_KEY] = chosen
    if st.session_state.get(EXPERIMENT_KEY) not in names:
        st.session_state[EXPERIMENT_KEY] = rows[0].id
    st.sidebar.selectbox("Experiment", list(names), format_func=names.__getitem__, key=EXPERIMENT_KEY)


def choose_experiment(experiment_id: int) -> None:
    """Make `experiment_id` the sidebar's choice from the next run on (e.g. before `st.switch_page`)."""
    st.session_state[CHOSEN_KEY] = experiment_id


def run_page(render: Callable[[PageContext], None]) -> None:
    """Render a page; a database or snapshot problem becomes one clear message, never a traceback."""
    try:
        render(page_context())
    except SnapshotError as exc:
        st.error(f"The analysis cannot be shown: {exc}. Re-run the analysis for this experiment.")
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        st.error(f"Could not read the database: {reason}")
    except ShadowlabError as exc:  # e.g. a stored capture that no longer parses, a plan the analysis rejects
        st.error(str(exc))


def require_experiment(ctx: PageContext) -> ExperimentRow:
    """The chosen experiment, or a message and a stop when there is none."""
    if ctx.experiment_id is None:
        st.info("No experiments yet. Create one with `shadowlab experiment create FILE.yaml`.")
        st.stop()
    row = data.experiment(ctx.database_url, ctx.experiment_id)
    if row is None:
        st.warning("The selected experiment no longer exists; choose another in the sidebar.")
        st.stop()
    return row


def require_snapshot(ctx: PageContext, experiment: ExperimentRow) -> SnapshotView:
    """The latest analysis, or a message and a stop when there is nothing to show yet."""
    snap = data.snapshot(ctx.database_url, experiment.id)
    if snap is None:
        if experiment.replays == 0:
            st.info(f"Experiment {md_escape(repr(experiment.name))} has no replays yet: nothing to analyse.")
        else:
            st.info(
                f"Experiment {md_escape(repr(experiment.name))} has {experiment.replays:,} replays "
                "but no analysis yet. "
                "Run `shadowlab analyze` for it."
            )
        st.stop()
    return snap


def untrusted_text(text: str | None, *, empty: str = "(no text)") -> None:
    """Captured prompts and model answers: shown as literal text, never as Markdown or HTML."""
    st.code(text if text else empty, language=None, wrap_lines=True)


def fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


_MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:")


def md_escape(text: str) -> str:
    """Escape a user-controlled string (experiment or arm name) for Streamlit's Markdown elements."""
    return "".join(f"\\{ch}" if ch in _MARKDOWN_SPECIAL else ch for ch in text)


def title(text: str, experiment: ExperimentRow | None = None) -> None:
    st.header(text if experiment is None else f"{text}: {md_escape(experiment.name)}", anchor=False)
