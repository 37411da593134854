"""Fixtures for the dashboard's AppTests: a migrated Postgres named as `shadowlab dashboard` names it, the
seeded experiment of tests/support/dashboard_seed.py, a bare experiment, and the app switched to a page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import data
from shadowlab import migrate
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.models import AnalysisSnapshot
from tests.support.dashboard_seed import APP, Seeded, add_experiment, seed


@pytest.fixture
def migrated(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated empty database, named by SHADOWLAB_DATABASE_URL as `shadowlab dashboard` does."""
    engine = create_engine(pg_database)
    migrate.upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("SHADOWLAB_DATABASE_URL", pg_database)
    st.cache_data.clear()
    yield pg_database
    data.engine(pg_database).dispose()  # close the app's pool before the database is dropped
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def app_test(migrated: str) -> Callable[..., AppTest]:
    """`app_test("views/overview.py")`: the app run once, switched to a page and run again."""

    def run(page: str | None = None, experiment_id: int | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60)
        if experiment_id is not None:
            at.session_state["experiment_id"] = experiment_id
        at.run()
        if page is not None:
            at.switch_page(page).run()
        return at

    return run


@pytest.fixture
def new_experiment(migrated: str) -> Callable[..., int]:
    """`new_experiment(analysis=None)`: an experiment with arms and no replays, optionally a snapshot row."""

    def make(analysis: dict[str, Any] | None = None) -> int:
        engine = create_engine(migrated)
        with session_scope(session_factory(engine)) as session:
            experiment, _, _ = add_experiment(session, "fresh-experiment")
            if analysis is not None:
                session.add(AnalysisSnapshot(experiment_id=experiment.id, analysis=analysis))
            experiment_id = experiment.id
        engine.dispose()
        return experiment_id

    return make


@pytest.fixture
def seeded(migrated: str) -> Seeded:
    return seed(migrated)
