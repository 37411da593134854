"""Recompute an experiment's analysis from the dashboard in the background: `shadowlab analyze EXP` started as
its own process (`shadowlab.analysis_runs`), which stores a new snapshot; the pages say it is running and
pick the snapshot up when it ends.

Anyone signed in may refresh: it decides nothing (decisions keep pointing at the snapshot they used) and
only adds the snapshot `shadowlab analyze` would add. One refresh per experiment runs at a time per server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import streamlit as st

from dashboard import data
from shadowlab.analysis_runs import AnalysisRun, start_analysis


@st.cache_resource(show_spinner=False)
def runs() -> dict[int, AnalysisRun]:
    """The refreshes this server started, by experiment id (the latest one each)."""
    return {}


_LOCK = threading.Lock()


def start_refresh(
    experiment_id: int, experiment_name: str, start: Callable[[str], AnalysisRun] = start_analysis
) -> AnalysisRun:
    """The refresh of this experiment: the one running, or a new one."""
    with _LOCK:
        current = runs().get(experiment_id)
        if current is None or current.done():
            current = runs()[experiment_id] = start(experiment_name)
        return current


def running(experiment_id: int) -> AnalysisRun | None:
    """The refresh of this experiment still running here, if any."""
    run = runs().get(experiment_id)
    return run if run is not None and not run.done() else None


def finished(experiment_id: int) -> AnalysisRun | None:
    """A refresh that ended since the page last looked (forgotten once returned); its caches are cleared."""
    with _LOCK:
        run = runs().get(experiment_id)
        if run is None or not run.done():
            return None
        del runs()[experiment_id]
    for cached in (data.snapshot_row, data.experiments, data.new_since):
        cached.clear()
    return run
