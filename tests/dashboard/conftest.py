"""Fixtures for the dashboard's AppTests: a migrated Postgres named as `shadowlab dashboard` names it, the
seeded experiment of tests/support/dashboard_seed.py, a bare experiment, and the app switched to a page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import data
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.models import AnalysisSnapshot
from tests.support.dashboard_seed import APP, Seeded, add_experiment, seed
from tests.support.net import free_port


@pytest.fixture
def migrated(pg_migrated: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated empty database, named by SHADOWLAB_DATABASE_URL as `shadowlab dashboard` does."""
    monkeypatch.setenv("SHADOWLAB_DATABASE_URL", pg_migrated)
    st.cache_data.clear()
    yield pg_migrated
    data.engine(pg_migrated).dispose()  # close the app's pool before the database is dropped
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


@pytest.fixture
def serve_dashboard(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`serve_dashboard(url, users=None)`: `shadowlab dashboard` on a free port (signed in through `users`, a
    users file, or with authentication off); returns its address. Stopped after the test, its output
    checked by `check_output` (e.g. that no password was logged)."""
    started: list[tuple[subprocess.Popen[str], Callable[[str], None] | None]] = []

    def serve(url: str, users: Path | None = None, check_output: Callable[[str], None] | None = None) -> str:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
        env["SHADOWLAB_DATABASE_URL"] = url
        if users is not None:
            env["SHADOWLAB_DASHBOARD_USERS"] = str(users)
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "dashboard", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        started.append((proc, check_output))
        address = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{address}/_stcore/health", timeout=2).text == "ok":
                    return address
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling until the server listens, bounded by the deadline
        pytest.fail(f"the dashboard did not start (exit code {proc.poll()})")

    yield serve
    for proc, check in started:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
        if check is not None:
            check(output)
