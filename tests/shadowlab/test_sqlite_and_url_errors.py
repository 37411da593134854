"""A SQLite database that cannot be used, and a malformed database URL: one `error:` line with the hint that
fits, never a traceback, never a password (Postgres: `test_database_errors`). Against real SQLite files: a
lock is held by a second connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shadowlab.db import check_connection, create_engine, parse_database_url, unusable_during_command
from shadowlab.errors import ConfigError, ServiceUnavailableError
from tests.support.database_errors import CliRunner, checked, one_line


@pytest.fixture
def sqlite_db(tmp_path: Path, cli: CliRunner) -> Iterator[Path]:
    done = cli("db", "upgrade", env={"SHADOWLAB_DATABASE_URL": "sqlite:///x.db"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    yield tmp_path / "x.db"


def test_a_locked_sqlite_file_says_who_holds_it_and_what_to_do(
    sqlite_db: Path, cli: CliRunner, tmp_path: Path
) -> None:
    writer = sqlite3.connect(sqlite_db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process's write transaction
        env = {"SHADOWLAB_DATABASE_URL": "sqlite:///x.db?timeout=0.2"}
        line = one_line(cli("experiment", "list", env=env, cwd=tmp_path), 3)
    finally:
        writer.close()
    assert line.startswith("error: database sqlite:///x.db?timeout=0.2 is locked: ") and "0.2 s" in line
    assert "use Postgres" in line and "unreachable" not in line and "password" not in line


def test_a_file_locked_past_the_wait_during_a_command_is_one_line(sqlite_db: Path) -> None:
    """Another process's long transaction (a retention run, a migration) that begins after the command's
    check: the command's next write waits `timeout=`, then SQLite says "database is locked"."""
    engine = create_engine(f"sqlite:///{sqlite_db}?timeout=0.1")
    writer = sqlite3.connect(sqlite_db, isolation_level=None)
    try:
        check_connection(engine)
        writer.execute("BEGIN IMMEDIATE")
        with pytest.raises(sa.exc.OperationalError) as locked, engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM experiments"))
        writer.execute("COMMIT")
        with pytest.raises(sa.exc.OperationalError) as other, engine.begin() as conn:  # not a lock: a bug
            conn.execute(sa.text("DELETE FROM no_such_table"))
    finally:
        writer.close()
        engine.dispose()
    line = unusable_during_command(locked.value)
    assert isinstance(line, ServiceUnavailableError) and line.exit_code == 3, locked.value
    assert str(line).startswith("database is locked during the command: ") and "timeout=" in str(line)
    assert unusable_during_command(other.value) is None


def test_a_file_that_is_not_a_database_is_a_setting(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database\n" * 100, encoding="utf-8")
    error = checked(f"sqlite:///{tmp_path / 'notes.db'}")
    assert isinstance(error, ConfigError) and "file is not a database" in str(error), error
    assert "shadowlab db upgrade" in str(error)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
@pytest.mark.parametrize("command", [("db", "upgrade"), ("experiment", "list")], ids=" ".join)
def test_an_in_memory_database_is_not_sent_round_in_circles(
    url: str, command: tuple[str, ...], cli: CliRunner, tmp_path: Path
) -> None:
    line = one_line(cli(*command, env={"SHADOWLAB_DATABASE_URL": url}, cwd=tmp_path), 2)
    assert "expected a SQLite file, like sqlite:///shadowlab.db (SHADOWLAB_DATABASE_URL)" in line
    assert "run `shadowlab db upgrade`" not in line  # it would be as empty in the next command


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("sqlite:///x.db?mode=ro", "expected sqlite query arguments among timeout"),
        ("sqlite:///x.db?mode=ro&uri=true", "expected sqlite:///file:NAME"),
        ("sqlite:///x.db?timeout=soon", "expected timeout= seconds"),
        ("sqlite:///x.db?timeout=-1", "expected timeout= seconds"),
        ("mysql://u:s3cret@h/db", "expected driver postgresql+psycopg"),
        ("postgresql+pyscopg://u:s3cret@h/db", "found 'postgresql+pyscopg'"),
        (
            "postgresql+psycopg://u:s3cret@h:port/db?sslpassword=s3cret&password=s3cret",
            "?sslpassword=***&password=***",
        ),
    ],
)
def test_a_malformed_url_is_refused_before_connecting(url: str, said: str) -> None:
    with pytest.raises(ConfigError, match="SHADOWLAB_DATABASE_URL") as raised:
        parse_database_url(url)
    assert said in str(raised.value) and "s3cret" not in str(raised.value)


def test_other_names_of_the_same_drivers_are_taken() -> None:
    assert parse_database_url("postgres://u:pw@h/db").drivername == "postgresql+psycopg"
    assert parse_database_url("sqlite+pysqlite:///x.db").drivername == "sqlite"
    assert parse_database_url("sqlite:///file:x.db?mode=ro&uri=true").drivername == "sqlite"
