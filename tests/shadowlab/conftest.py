"""Fixtures of the tee tests (an in-memory sink, a fast simulator per module for the real SDKs) and of the
migration tests (an empty database on SQLite and Postgres)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import shadowlab_tee as tee
from shadowlab.db import create_engine
from simulator import ProfileSet, RunningSimulator, running_simulator
from tests.support.sim_profiles import FAST


@pytest.fixture
def sink() -> Iterator[tee.MemorySink]:
    memory = tee.MemorySink()
    yield memory
    memory.close(timeout=5)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(seed=3, profiles=ProfileSet(default=FAST)) as running:
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty database, not migrated: a new SQLite file, or a new Postgres database (`pg_database`)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    eng = create_engine(url)
    yield eng
    eng.dispose()
