"""The dashboard checks its database before any page (issue 19): a missing, unmigrated or unreachable
database is one clear message saying what to run, never "no such table" beside "No experiments yet"."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from tests.support.dashboard_seed import APP


def _run(monkeypatch: pytest.MonkeyPatch, url: str) -> AppTest:
    monkeypatch.setenv("SHADOWLAB_DATABASE_URL", url)
    monkeypatch.setenv("SHADOWLAB_CONNECT_TIMEOUT_S", "1")
    monkeypatch.delenv("SHADOWLAB_DASHBOARD_USERS", raising=False)
    monkeypatch.delenv("SHADOWLAB_DASHBOARD_TRUSTED_HEADER", raising=False)
    return AppTest.from_file(str(APP), default_timeout=60).run()


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "no such file"),
        ("empty", "not migrated"),
        ("unreachable", "database unreachable at"),
    ],
)
def test_an_unusable_database_is_one_message_that_says_what_to_do(
    case: str, needle: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if case == "missing":
        url = f"sqlite:///{tmp_path / 'missing.db'}"
    elif case == "empty":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
        engine = sa.create_engine(url)
        engine.connect().close()  # the file exists, with no tables
        engine.dispose()
    else:
        url = "postgresql+psycopg://nobody:secret-pw@127.0.0.1:1/nothing"
    at = _run(monkeypatch, url)
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("The database cannot be used: ") and needle in error
    assert "secret-pw" not in error
    assert not (tmp_path / "missing.db").exists()  # checking creates nothing
    assert "no such table" not in " ".join(str(m.value) for m in [*at.markdown, *at.info, *at.warning])


@pytest.mark.postgres
def test_a_refused_login_is_a_setting_not_a_server_away(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    url = sa.engine.make_url(postgres_url).set(password="not-the-password", query={"sslmode": "disable"})
    at = _run(monkeypatch, url.render_as_string(hide_password=False))
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("The database cannot be used: database ") and "refused the login" in error
    assert "unreachable" not in error and "not-the-password" not in error
