"""Decisions cannot be erased by the app's own credentials (issue 20, defect 6): a TRUNCATE trigger, and
the services connecting as a role granted rows but no ownership (`shadowlab db grant-app`), so the
immutability triggers cannot be disabled or dropped. Against the real Postgres of `make services`, whose
script creates the `shadowlab_app` role."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from shadowlab.db import create_engine
from shadowlab.errors import ConfigError
from shadowlab.models import Decision, Experiment

pytestmark = pytest.mark.postgres
APP_ROLE = os.environ.get("SHADOWLAB_TEST_APP_ROLE", "shadowlab_app")
APP_PASSWORD = os.environ.get("SHADOWLAB_TEST_APP_PASSWORD", "shadowlab_app")


def _decision(experiment: int, verdict: str, by: str) -> dict[str, object]:
    return {"experiment_id": experiment, "verdict": verdict, "decided_by": by, "reason": "r", "evidence": {}}


@pytest.fixture
def owner_url(pg_migrated: str) -> str:
    engine = create_engine(pg_migrated)
    try:
        with engine.begin() as conn:
            experiment = conn.execute(
                sa.insert(Experiment).values(name="e").returning(Experiment.id)
            ).scalar_one()
            conn.execute(sa.insert(Decision).values(_decision(experiment, "ship", "erin")))
    finally:
        engine.dispose()
    return pg_migrated


@pytest.fixture
def app_engine(owner_url: str) -> Iterator[sa.Engine]:
    result = CliRunner().invoke(app, ["db", "grant-app", APP_ROLE], env={"SHADOWLAB_DATABASE_URL": owner_url})
    assert result.exit_code == 0, result.output
    url = sa.engine.make_url(owner_url).set(username=APP_ROLE, password=APP_PASSWORD)
    engine = create_engine(url.render_as_string(hide_password=False))
    yield engine
    engine.dispose()


def _refused(engine: sa.Engine, statement: str) -> str:
    """The database's message refusing `statement` (the test fails if it is accepted)."""
    with engine.connect() as conn:
        try:
            conn.execute(sa.text(statement))
        except sa.exc.DBAPIError as exc:
            conn.rollback()
            return str(exc.orig)
    pytest.fail(f"accepted: {statement}")


def test_even_the_owner_cannot_truncate_decisions(owner_url: str) -> None:
    engine = create_engine(owner_url)
    try:
        assert "TRUNCATE would erase the audit trail" in _refused(engine, "TRUNCATE decisions")
        assert "TRUNCATE would erase the audit trail" in _refused(engine, "TRUNCATE experiments CASCADE")
    finally:
        engine.dispose()


def test_the_app_role_works_with_rows_but_cannot_touch_the_triggers(app_engine: sa.Engine) -> None:
    with app_engine.begin() as conn:  # what the services do: read, insert, update, delete rows
        experiment = conn.execute(sa.text("SELECT id FROM experiments WHERE name = 'e'")).scalar_one()
        conn.execute(sa.insert(Decision).values(_decision(experiment, "dont_ship", "pat")))
        conn.execute(sa.text("UPDATE experiments SET status = 'concluded' WHERE id = :e"), {"e": experiment})
        assert conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar_one() == 2
        conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    for statement in (
        "TRUNCATE decisions",
        "ALTER TABLE decisions DISABLE TRIGGER ALL",
        "ALTER TABLE decisions DISABLE TRIGGER decisions_immutable",
        "DROP TRIGGER decisions_immutable ON decisions",
        "DROP TRIGGER decisions_no_truncate ON decisions",
        "DROP TABLE decisions",
        "UPDATE decisions SET reason = 'rewritten'",
        "DELETE FROM decisions",
    ):
        message = _refused(app_engine, statement)
        assert "permission denied" in message or "must be owner" in message, (statement, message)
    with app_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar_one() == 2


def test_grant_app_refuses_an_unknown_role_with_one_clear_error(owner_url: str) -> None:
    env = {"SHADOWLAB_DATABASE_URL": owner_url}
    result = CliRunner().invoke(app, ["db", "grant-app", "nobody_here"], env=env)
    assert isinstance(result.exception, ConfigError) and result.exception.exit_code == 2
    assert str(result.exception) == (
        "ROLE: expected an existing Postgres role, found 'nobody_here' (CREATE ROLE … LOGIN first)"
    )
