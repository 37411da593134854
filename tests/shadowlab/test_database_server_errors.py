"""A Postgres server in trouble is exit 3 with what it reported and what to do, not a setting (exit 2) and not
a traceback: out of connection slots at the login (the limit it hit is named: max_connections, a role's or a
database's CONNECTION LIMIT), or a statement failed with SQLSTATE class 53 (out of disk, memory,
connections, a limit of the server's own configuration), 58 (its files) or XX (internal error, corruption).

A database's connection limit is reached for real; the server's max_connections is not (the services' server
is shared by the other tests), so its refusal, and a role's (the tests' role may not create roles), come from
a socket that answers the login as Postgres does. Disk full, I/O errors and corruption cannot be produced
here: the mapping is given the error psycopg raises for that SQLSTATE.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from shadowlab import db_errors
from shadowlab.db import create_engine, parse_database_url, unusable_during_command
from shadowlab.errors import ConfigError, ServiceUnavailableError
from tests.support.database_errors import CliRunner, answering_once, checked, one_line, refusal

WHERE = "postgresql+psycopg://shadowlab:***@127.0.0.1:54329/shadowlab"


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("experiment", "list"), ("analyze", "x", "--json")], ids=" ".join)
def test_a_database_connection_limit_reached_names_the_limit(
    command: tuple[str, ...], pg_database: str, cli: CliRunner, tmp_path: Path
) -> None:
    """`analyze` first tries its prefetch's connection, refused too: the command's own connect reports it."""
    name = parse_database_url(pg_database).database
    owner = create_engine(pg_database)
    try:
        with owner.connect() as held:  # the one connection the limit allows (its owner is no superuser)
            held.execute(sa.text(f'ALTER DATABASE "{name}" CONNECTION LIMIT 1'))
            held.commit()
            line = one_line(cli(*command, env={"SHADOWLAB_DATABASE_URL": pg_database}, cwd=tmp_path), 3)
    finally:
        owner.dispose()
    assert f'takes no more connections: too many connections for database "{name}"' in line, line
    assert "ALTER DATABASE ... CONNECTION LIMIT), then try again" in line


@pytest.mark.parametrize(
    ("said", "limit"),
    [
        ("sorry, too many clients already", "raise the server's max_connections"),
        ("remaining connection slots are reserved for non-replication superuser connections", "max_conn"),
        ('too many connections for role "shadowlab"', "ALTER ROLE ... CONNECTION LIMIT"),
    ],
    ids=["max_connections", "reserved slots", "role limit"],
)
def test_a_server_out_of_connection_slots_names_the_limit(
    said: str, limit: str, cli: CliRunner, tmp_path: Path
) -> None:
    with answering_once(refusal("53300", said), password_read=False) as url:
        line = one_line(cli("experiment", "list", env={"SHADOWLAB_DATABASE_URL": url}, cwd=tmp_path), 3)
    assert line.startswith("error: database at ") and f" takes no more connections: {said} (" in line, line
    assert limit in line and "then try again" in line and "SHADOWLAB_DATABASE_URL" not in line


def test_a_server_starting_up_is_still_for_a_moment() -> None:
    with answering_once(refusal("57P03", "the database system is starting up"), password_read=False) as url:
        error = checked(url)
    assert isinstance(error, ServiceUnavailableError) and "try again in a moment" in str(error), error
    assert "max_connections" not in str(error)


# SQLSTATE: words of what the server reported, words of what to do
TROUBLE = {
    "53100": ("could not extend file: No space left on device", "out of disk space: free some"),
    "53200": ("out of memory", "out of memory: lower its load or work_mem"),
    "53300": ("sorry, too many clients already", "raise max_connections"),
    "53400": ("temporary file size exceeds temp_file_limit (1024kB)", "its administrator raises the setting"),
    "58030": ("could not read block 0 in file: Input/output error", "checks its log and disks"),
    "58P01": ('could not open file "base/1/2": No such file or directory', "checks its log and disks"),
    "58P02": ('could not create directory "pg_tblspc/1": File exists', "checks its log and disks"),
    "XX000": ("cache lookup failed for relation 1", "internal error or corrupted data"),
    "XX001": ("invalid page in block 0 of relation base/1/2", "restore corrupted data from a backup"),
    "XX002": ('index "i" contains unexpected zero page at block 0', "REINDEX a corrupted index"),
}


def _raised(sqlstate: str, said: str) -> psycopg.Error:
    """The error psycopg raises for a server's ERROR with `sqlstate`."""
    error_class: type[psycopg.Error] = psycopg.errors.lookup(sqlstate)
    return error_class(said)


@pytest.mark.parametrize("sqlstate", TROUBLE)
def test_a_server_in_trouble_is_for_now_not_a_setting(sqlstate: str) -> None:
    """The check before a command, `db upgrade`'s migration and a command's own statements (through
    SQLAlchemy, or straight to psycopg) all say what the server reported and what to do, exit 3."""
    said, todo = TROUBLE[sqlstate]
    error = _raised(sqlstate, said)
    wrapped = sa.exc.OperationalError("SELECT 1", {}, error)
    lines = {
        "check": db_errors.statement_error(WHERE, error, lost=False),
        "migration": db_errors.upgrade_error(WHERE, error, lost=False),
        "command": unusable_during_command(wrapped),
        "command, psycopg's own": unusable_during_command(error),
    }
    for where, line in lines.items():
        assert isinstance(line, ServiceUnavailableError) and line.exit_code == 3, (where, line)
        assert f": {said} (" in str(line) and todo in str(line), (where, line)
        assert "SHADOWLAB_DATABASE_URL" not in str(line), (where, line)
    assert "run `shadowlab db upgrade` again" in str(lines["migration"])


def test_another_failed_statement_is_still_a_setting_or_a_bug() -> None:
    """A statement the server refused for what it was asked (no such table, a division by zero) is not the
    server in trouble: the check blames the setting, a migration or a command keeps its traceback."""
    missing = _raised("42P01", 'relation "alembic_version" does not exist')
    assert isinstance(db_errors.statement_error(WHERE, missing, lost=False), ConfigError)
    assert db_errors.upgrade_error(WHERE, missing, lost=False) is None
    assert unusable_during_command(_raised("22012", "division by zero")) is None
    assert unusable_during_command(sa.exc.DataError("SELECT 1/0", {}, _raised("22012", "x"))) is None


@pytest.mark.parametrize(
    ("sqlstate", "said", "why"),
    [
        ("40P01", "deadlock detected", "lost a deadlock with another session"),
        ("40001", "could not serialize access due to concurrent update", "lost a race with another session"),
    ],
)
def test_a_deadlock_or_a_race_lost_is_not_blamed_on_a_timeout(sqlstate: str, said: str, why: str) -> None:
    """A check or a migration that lost a deadlock (two `db upgrade` at once could, before they took turns) or
    a serialization race did not wait past a timeout: the line says what happened, and to run it again."""
    error = _raised(sqlstate, said)
    lines = {
        "check": db_errors.statement_error(WHERE, error, lost=False),
        "migration": db_errors.upgrade_error(WHERE, error, lost=False),
    }
    for where, line in lines.items():
        assert isinstance(line, ServiceUnavailableError) and line.exit_code == 3, (where, line)
        assert f": {said} (" in str(line) and why in str(line), (where, line)
        assert "timeout" not in str(line), (where, line)
    assert "run `shadowlab db upgrade` again" in str(lines["migration"])
