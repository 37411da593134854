"""What every page shares: the database URL and chosen experiment, safe text, friendly failures."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import streamlit as st
from sqlalchemy.orm import Session

from analysis import display
from analysis.glossary import metric_meanings, term_help
from dashboard import data, refresh
from dashboard.answer_text import markdown_html
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
        st.error(
            f"The analysis cannot be shown: {md_escape(str(exc))}. Re-run the analysis for this experiment."
        )
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        st.error(f"Could not read the database: {md_escape(reason)}")
    except ShadowlabError as exc:  # e.g. a stored capture that no longer parses, a plan the analysis rejects
        st.error(md_escape(str(exc)))


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
    """The latest analysis (with a warning when newer data arrived since), or a message and a stop when there
    is nothing to show yet."""
    pick_up_refresh(experiment)
    snap = data.snapshot(ctx.database_url, experiment.id)
    if snap is None:
        if experiment.replays == 0:
            st.info(f"Experiment {md_escape(repr(experiment.name))} has no replays yet: nothing to analyse.")
        else:
            st.info(
                f"Experiment {md_escape(repr(experiment.name))} has {experiment.replays:,} replays "
                "but no analysis yet."
            )
            refresh_control(experiment, "Compute the analysis")
        st.stop()
    freshness(ctx, experiment, snap.computed_at)
    return snap


def freshness(ctx: PageContext, experiment: ExperimentRow, computed_at: datetime) -> None:
    """When replays, scores or preferences arrived after the analysis: how old it is, and a refresh."""
    new = data.new_since(ctx.database_url, experiment.id, computed_at)
    if not new.any:
        return
    counts = ((new.replays, "replay"), (new.scores, "score"), (new.preferences, "judge preference"))
    arrived = " and ".join(f"{display.count(n)} {what}{'s' if n > 1 else ''}" for n, what in counts if n)
    when = in_utc(computed_at)
    age = display.duration((datetime.now(UTC) - when).total_seconds())
    st.warning(
        f"These numbers are from the analysis of {when:%d %b %H:%M} UTC ({age} ago); {arrived} arrived "
        "since. Refresh the analysis to include them.",
        icon=":material/update:",
    )
    refresh_control(experiment, "Refresh analysis")


def in_utc(moment: datetime) -> datetime:
    """A stored time in UTC (SQLite hands back naive datetimes, which are UTC)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def pick_up_refresh(experiment: ExperimentRow) -> None:
    """Before a page reads the analysis: a refresh that ended makes the cached snapshot go (a failed one says
    why, once)."""
    ended = refresh.finished(experiment.id)
    error = ended.error() if ended is not None else None
    if error is not None:
        st.error(f"The refresh of the analysis failed: {md_escape(error)}", icon=":material/error:")


def refresh_control(experiment: ExperimentRow, label: str) -> None:
    """A button that starts `shadowlab analyze` in the background, or, while it runs, how long it has."""
    if refresh.running(experiment.id) is not None:
        _refreshing(experiment.id)
        return
    clicked = st.button(
        label,
        key=f"refresh-analysis-{experiment.id}",
        icon=":material/refresh:",
        help="Runs the analysis in the background on everything stored (as `shadowlab analyze` does) and "
        "keeps it as the latest snapshot; decisions keep pointing at the analysis they used. Takes seconds "
        "to a minute; the page shows the new numbers when it is done.",
    )
    if clicked:
        refresh.start_refresh(experiment.id, experiment.name)
        st.rerun()


@st.fragment(run_every=timedelta(seconds=2))
def _refreshing(experiment_id: int) -> None:
    """Redrawn every 2 s while the refresh runs; the whole page runs again once it has ended."""
    run = refresh.running(experiment_id)
    if run is None:
        st.rerun(scope="app")
    else:
        age = display.duration((datetime.now(UTC) - run.started_at).total_seconds())
        st.info(
            f"Refreshing the analysis… started {age} ago. The page shows the new numbers when it is done.",
            icon=":material/hourglass_top:",
        )


def column_guide(columns: Mapping[str, str], *terms: str, label: str = "How to read this table") -> None:
    """What each column of a static table means and the glossary's `terms`, one click away (`st.table` has
    no column tooltips)."""
    with st.popover(label, icon=":material/help:"):
        st.markdown("\n".join(f"- **{name}**: {text}" for name, text in columns.items()))
        if terms:
            st.markdown(term_help(*terms))
        st.page_link("views/glossary.py", label="Every term in the glossary", icon=":material/menu_book:")


def metric_glossary(snap: SnapshotView | None) -> list[str]:
    """'**Quality**: what it means' per metric of the analysis, by the names the pages show (a judge's is
    its name); without an analysis, the metrics every experiment has."""
    pairs = dict.fromkeys((c.metric, c.kind) for c in snap.comparisons) if snap is not None else {}
    return [f"**{md_escape(name)}**: {meaning}" for name, meaning in metric_meanings(pairs).items()]


def untrusted_text(text: str | None, *, empty: str = "(no text)") -> None:
    """Captured prompts and model answers: shown as literal text, never as Markdown or HTML."""
    st.code(text if text else empty, language=None, wrap_lines=True)


def formatted_answer(text: str | None) -> None:
    """A model's answer as its Markdown formats it (headings, lists, code), without HTML, links or images."""
    if text is None:
        untrusted_text(text, empty="(no answer)")
    else:
        st.html(markdown_html(text))


def fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


_MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()<>#+-.!|~$:@/")
# Streamlit autolinks `https://…`, `www.…` and `a@b.c` found in the text *after* Markdown is parsed, and
# reads `:material/icon:` and `:emoji:` whatever the backslashes; an invisible WORD JOINER before every `:`
# and `@`, and in `www.`, stops both (the text reads the same).
_AUTOLINK = re.compile(r"(?=[:@])|(?<=www)(?=\.)", re.IGNORECASE)
_JOINER = "\u2060"
# Bidirectional controls (an RTL override in a name would reverse the text after it): a name that holds
# one is isolated (FSI … PDI), so its direction cannot leak into the sentence around it.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def md_escape(text: str) -> str:
    """A user-controlled string (experiment, arm or metric name, or a sentence quoting one) for Streamlit's
    Markdown elements (headers, messages, captions, `st.metric` values, `st.table` cells): shown as typed,
    never as a link, HTML, formatting, math or a directive."""
    joined = _AUTOLINK.sub(_JOINER, text)
    escaped = "".join(f"\\{ch}" if ch in _MARKDOWN_SPECIAL else ch for ch in joined)
    return f"\u2068{escaped}\u2069" if _BIDI_CONTROLS.intersection(text) else escaped


def title(text: str, experiment: ExperimentRow | None = None) -> None:
    st.header(text if experiment is None else f"{text}: {md_escape(experiment.name)}", anchor=False)
