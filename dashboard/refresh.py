"""Recompute an experiment's analysis from the dashboard: the same path as `shadowlab analyze EXP` (the
analysis run and stored as a new snapshot), then the cached views of it cleared.

Anyone signed in may refresh: it decides nothing (decisions keep pointing at the snapshot they used) and
only adds the snapshot `shadowlab analyze` would add. One refresh per experiment runs at a time per server.
"""

from __future__ import annotations

import threading

import streamlit as st

from analysis.experiment_analysis import analyze_experiment
from dashboard import data
from shadowlab.db import session_factory, session_scope


class RefreshBusyError(Exception):
    """Another session of this server is already recomputing this experiment's analysis."""


@st.cache_resource(show_spinner=False)
def _locks() -> dict[int, threading.Lock]:
    return {}


def refresh_analysis(database_url: str, experiment_id: int, experiment_name: str) -> int | None:
    """Analyse and store a snapshot; returns its id. `RefreshBusyError` while another refresh runs."""
    lock = _locks().setdefault(experiment_id, threading.Lock())
    if not lock.acquire(blocking=False):
        raise RefreshBusyError("the analysis of this experiment is already being recomputed")
    try:
        with session_scope(session_factory(data.engine(database_url))) as session:
            report = analyze_experiment(session, experiment_name, store=True)
    finally:
        lock.release()
    for cached in (data.snapshot_row, data.experiments, data.new_since):
        cached.clear()
    return report.snapshot_id
