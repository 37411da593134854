"""Cached loaders: every page reads the database through here, keyed by the database URL.

Results are small (one snapshot row, aggregates, one page of answers), so caching them is cheap; the TTL
keeps a page live without re-running a query on every widget click.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
import streamlit as st
from sqlalchemy.orm import Session

from dashboard import answers, queries
from dashboard.snapshot import SnapshotView, parse_snapshot
from shadowlab import store
from shadowlab.db import check_connection, create_engine
from shadowlab.errors import ShadowlabError

SHORT_TTL_S = 10  # live numbers
TTL_S = 60  # analysis snapshots and aggregates
ECDF_GRID = tuple(i / 100 for i in range(1, 100)) + (0.995, 0.999)
# Rows sorted for the ECDF charts at most (in expectation); 50k rather than 200k: 0.33 → 0.12 s at 1M replays.
ECDF_SAMPLE_ROWS = 50_000


@st.cache_data(ttl=SHORT_TTL_S, show_spinner=False)
def database_problem(database_url: str, connect_timeout_s: float) -> str | None:
    """None when the database answers and has the code's schema; else the one line that says why (and what
    to run), so a page never shows "no such table" beside "No experiments yet"."""
    checked = create_engine(database_url, connect_timeout_s=connect_timeout_s)
    try:
        check_connection(checked)
    except ShadowlabError as exc:
        return str(exc)
    finally:
        checked.dispose()
    return None


@st.cache_resource(ttl=3600, show_spinner=False)
def engine(database_url: str) -> sa.Engine:
    """One engine (and connection pool) per database URL for the whole server."""
    return create_engine(database_url)


def _session(database_url: str) -> Session:
    """A read session on the cached engine, for the `shadowlab.store` functions."""
    return Session(engine(database_url))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def experiments(database_url: str) -> tuple[queries.ExperimentRow, ...]:
    with engine(database_url).connect() as conn:
        return queries.list_experiments(conn)


def experiment(database_url: str, experiment_id: int) -> queries.ExperimentRow | None:
    """One experiment, from the cached list (one aggregate over replays serves the sidebar and the page)."""
    return next((row for row in experiments(database_url) if row.id == experiment_id), None)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def snapshot_row(database_url: str, experiment_id: int) -> queries.SnapshotRow | None:
    with _session(database_url) as session:
        row = store.snapshots.latest(experiment_id, session=session)
        return (
            None
            if row is None
            else queries.SnapshotRow(row.computed_at, row.n_requests, row.verdict, row.analysis)
        )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def new_since(database_url: str, experiment_id: int, since: datetime) -> store.snapshots.NewSince:
    """Replays, scores and preferences stored after `since` (the latest analysis): is it stale?"""
    with _session(database_url) as session:
        return store.snapshots.new_since(experiment_id, since, session=session)


def snapshot(database_url: str, experiment_id: int) -> SnapshotView | None:
    """The latest analysis as a typed view; None when none was computed; `SnapshotError` when unreadable."""
    row = snapshot_row(database_url, experiment_id)
    if row is None:
        return None
    return parse_snapshot(row.analysis, computed_at=row.computed_at, n_requests=row.n_requests)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def latency_quantiles(
    database_url: str, experiment_id: int, replays: int, grid: Sequence[float] = ECDF_GRID
) -> dict[queries.LatencyColumn, dict[str, list[float]]]:
    """ECDF quantiles per timing column and arm; above ECDF_SAMPLE_ROWS replays, from a fixed-seed sample."""
    percent = 100.0 * ECDF_SAMPLE_ROWS / replays if replays > ECDF_SAMPLE_ROWS else None
    with engine(database_url).connect() as conn:
        return queries.latency_quantiles(conn, experiment_id, grid, sample_percent=percent)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def tokens_by_arm(database_url: str, experiment_id: int) -> tuple[queries.ArmTokens, ...]:
    with engine(database_url).connect() as conn:
        return queries.tokens_by_arm(conn, experiment_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def price_snapshot(database_url: str, experiment_id: int) -> dict[str, object]:
    with _session(database_url) as session:
        return dict(store.experiments.by_id(experiment_id, session=session).price_snapshot or {})


@st.cache_data(ttl=SHORT_TTL_S, show_spinner=False)
def live_stats(database_url: str, experiment_id: int) -> queries.LiveStats:
    with engine(database_url).connect() as conn:
        return queries.live_stats(conn, experiment_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def scorers(database_url: str, experiment_id: int) -> tuple[tuple[str, str], ...]:
    """Scorer (name, version) pairs that scored this experiment's replays."""
    with _session(database_url) as session:
        found = store.scorers.versions(experiment_id, session=session, pairwise=False)
    return tuple((v.name, v.version) for v in found)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def segments(database_url: str, experiment_id: int) -> tuple[tuple[str, str], ...]:
    with engine(database_url).connect() as conn:
        return answers.segments(conn, experiment_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def answer_pairs(database_url: str, pair_filter: answers.PairFilter) -> tuple[answers.AnswerPair, ...]:
    with engine(database_url).connect() as conn:
        return answers.answer_pairs(conn, pair_filter)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def pair_counts(database_url: str, pair_filter: answers.PairFilter) -> answers.PairCounts:
    """Improved / same / regressed over every pair of the filter (its page and order do not matter)."""
    with engine(database_url).connect() as conn:
        return answers.pair_counts(conn, pair_filter)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def segment_table(database_url: str, experiment_id: int) -> tuple[answers.SegmentRow, ...]:
    with engine(database_url).connect() as conn:
        return answers.segment_table(conn, experiment_id)
