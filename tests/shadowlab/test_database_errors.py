"""A Postgres database that cannot be used is one `error:` line with the hint that fits what happened, never a
traceback, never the password: a setting to fix exits 2 (the server answered: a wrong password, no such
database or role, a bad option, a user who may not read the tables), a server out of reach for now exits 3
(nothing listens, the name does not resolve, a connection limit or one ended, a lock held by another
session). Against the real Postgres of `make services`: a refusal is the server's own (SQLite files and
malformed URLs: `test_sqlite_and_url_errors`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from shadowlab.db import (
    create_engine,
    parse_database_url,
    psycopg_conninfo,
    shown_url,
    unusable_during_command,
)
from shadowlab.errors import ConfigError, ServiceUnavailableError
from tests.support.database_errors import (
    PASSWORD,
    CliRunner,
    answering_once,
    checked,
    message,
    one_line,
    refusal,
)
from tests.support.net import free_port
from tests.support.waiting import wait_for

APP_ROLE = os.environ.get("SHADOWLAB_TEST_APP_ROLE", "shadowlab_app")
APP_PASSWORD = os.environ.get("SHADOWLAB_TEST_APP_PASSWORD", "shadowlab_app")


def _url(postgres_url: str, change: Callable[[URL], URL]) -> str:
    """The test server's URL, `change`d."""
    # no SSL: libpq's default (prefer) would log in twice on a server that has it
    url = change(sa.engine.make_url(postgres_url).set(query={"sslmode": "disable"}))
    return url.render_as_string(hide_password=False)


# --- the server answered: a setting to fix, exit 2 ----------------------------------------------------------

REFUSED: dict[str, tuple[Callable[[URL], URL], str, str]] = {
    "wrong password": (
        lambda url: url.set(password=PASSWORD),
        "refused the login",
        "password authentication failed",
    ),
    "unknown role": (
        lambda url: url.set(username="h3_nobody", password=PASSWORD),
        "refused the login",
        "h3_nobody",
    ),
    "unknown database": (
        lambda url: url.set(database="h3_no_such_db"),
        "refused the connection",
        'database "h3_no_such_db" does not exist',
    ),
    "no password": (
        lambda url: url._replace(password=None),  # `set(password=None)` keeps the one there
        "refused the login",
        "no password supplied",
    ),
    "database closed to connections": (
        lambda url: url.set(database="template0"),
        "refused the connection",
        'database "template0" is not currently accepting connections',
    ),
}


@pytest.mark.postgres
@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_refused_login_is_a_setting_to_fix(case: str, postgres_url: str) -> None:
    change, what, said = REFUSED[case]
    url = _url(postgres_url, change)
    error = checked(url)
    assert isinstance(error, ConfigError) and error.exit_code == 2, error
    assert str(error).startswith(f"database {shown_url(parse_database_url(url))} {what}: "), error
    assert said in str(error) and "(SHADOWLAB_DATABASE_URL: expected " in str(error)
    assert PASSWORD not in str(error) and "unreachable" not in str(error)


@pytest.mark.postgres
def test_a_connection_of_our_own_reaches_the_server_of_several_hosts(postgres_url: str) -> None:
    """`psycopg_conninfo` (the limits' LISTEN connection, `shadowlab.pg_async`'s lanes) reads hosts as
    SQLAlchemy does: the URI of the URL gave libpq's default port to the first of h1,h2:port, and a host named
    'h:p' for ?host=h:p."""
    import asyncio

    import psycopg

    from shadowlab.pg_async import AsyncStatements

    async def on_a_lane(engine: sa.Engine) -> list[tuple[int]]:
        statements = AsyncStatements(engine)
        try:
            return [tuple(row) for row in await statements.rows("check", sa.text("SELECT 1"), {})]
        finally:
            await statements.aclose()

    url = sa.engine.make_url(postgres_url)
    closed = f"127.0.0.1:{free_port()}"
    for several in (
        url._replace(host=None, port=None).update_query_dict({"host": (f"{url.host}:{url.port}", closed)}),
        url.set(host=f"{url.host},127.0.0.2"),  # nothing listens on 127.0.0.2 at the server's port
    ):
        with psycopg.connect(psycopg_conninfo(several), connect_timeout=2) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        engine = sa.create_engine(several)
        try:
            assert asyncio.run(on_a_lane(engine)) == [(1,)]
        finally:
            engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("case", ["wrong password", "unknown database", "no password"])
def test_a_refusal_by_one_of_several_hosts_is_the_reason(case: str, postgres_url: str) -> None:
    """libpq tries the hosts in turn and psycopg's first line is the last one's: a closed port after the
    server that refused must not turn the refusal into "refused the connection: Connection refused"."""
    change, what, said = REFUSED[case]
    url = sa.engine.make_url(_url(postgres_url, change))
    hosts = (f"{url.host}:{url.port}", f"127.0.0.1:{free_port()}")  # the server, then nothing
    several = url._replace(host=None, port=None).update_query_dict({"host": hosts})
    error = checked(several.render_as_string(hide_password=False))
    assert isinstance(error, ConfigError) and f" {what}: " in str(error) and said in str(error), error
    assert "Connection refused" not in str(error) and PASSWORD not in str(error)


def test_a_refusal_by_pg_hba_conf_names_pg_hba_conf() -> None:
    """Its words quote the database too; the server's refusal is sent as Postgres sends it (a FATAL
    ErrorResponse after the startup packet) and read by libpq, as in a real refusal."""
    said = 'no pg_hba.conf entry for host "127.0.0.1", user "shadowlab", database "shadowlab", no encryption'
    with answering_once(refusal("28000", said), password_read=False) as url:
        error = checked(url)
    assert isinstance(error, ConfigError) and said in str(error), error
    assert "expected a user and database that the server's pg_hba.conf admits" in str(error)


AUTH_HINT = "expected require_auth= and channel_binding= that the server's way of logging in meets"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("query", "said", "hint"),
    [
        ({"sslmode": "require"}, "does not support SSL", "expected an sslmode"),
        ({"sslmode": "sometimes"}, "invalid sslmode value", "expected libpq's connection parameters"),
        ({"colour": "blue"}, 'invalid connection option "colour"', "expected libpq's connection parameters"),
        ({"options": "-c no_such.setting_x=1 -c colour=blue"}, "colour", "options the server accepts"),
        ({"require_auth": "md5"}, 'requirement "md5" failed', AUTH_HINT),  # the server asks for SCRAM
        ({"require_auth": "!scram-sha-256"}, "requested SCRAM", AUTH_HINT),
        ({"channel_binding": "require"}, "SSL not in use", AUTH_HINT),
        ({"gssencmode": "require"}, "GSSAPI", "expected a gssencmode"),  # no Kerberos credentials here
        ({"service": "h5_nosuch"}, 'service "h5_nosuch" not found', "expected a service= that"),
    ],
)
def test_a_bad_connection_option_is_a_setting_to_fix(
    query: dict[str, str], said: str, hint: str, postgres_url: str
) -> None:
    error = checked(sa.engine.make_url(postgres_url).set(query=query).render_as_string(hide_password=False))
    assert isinstance(error, ConfigError) and said in str(error) and hint in str(error), error


@pytest.mark.postgres
def test_a_password_given_as_a_query_argument_is_not_shown(postgres_url: str) -> None:
    url = sa.engine.make_url(postgres_url).set(
        password=None, query={"password": PASSWORD, "sslmode": "disable"}
    )
    error = checked(url.render_as_string(hide_password=False))
    assert isinstance(error, ConfigError) and "password=***" in str(error) and PASSWORD not in str(error)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "command",
    [
        ("analyze", "x", "--json"),  # the prefetch's refused connect, reported by the command
        ("report", "x"),
        ("route", "x"),
        ("gate", "x"),
        ("replay", "x"),
        ("score", "x"),
        ("ingest", "--source", "file", "c.jsonl"),
        ("experiment", "list"),
        ("db", "upgrade"),
    ],
    ids=" ".join,
)
def test_every_command_says_a_wrong_password_is_a_setting(
    command: tuple[str, ...], postgres_url: str, cli: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "c.jsonl").write_text("", encoding="utf-8")
    url = _url(postgres_url, lambda url: url.set(password=PASSWORD))
    line = one_line(cli(*command, env={"SHADOWLAB_DATABASE_URL": url}, cwd=tmp_path), 2)
    assert "refused the login: password authentication failed" in line and "SHADOWLAB_DATABASE_URL" in line


# --- no server, or one that takes no connections now: exit 3 ------------------------------------------------


def test_a_closed_port_is_unreachable(cli: CliRunner, tmp_path: Path) -> None:
    url = f"postgresql+psycopg://shadowlab:{PASSWORD}@127.0.0.1:{free_port()}/shadowlab"
    line = one_line(cli("experiment", "list", env={"SHADOWLAB_DATABASE_URL": url}, cwd=tmp_path), 3)
    assert line.startswith("error: database unreachable at ") and "Connection refused" in line
    assert "expected a running Postgres at that host and port" in line and "password" not in line


def test_a_host_name_that_does_not_resolve_is_unreachable() -> None:
    error = checked(f"postgresql+psycopg://shadowlab:{PASSWORD}@no-such-host.invalid:5432/shadowlab")
    assert isinstance(error, ServiceUnavailableError) and "expected a host name that resolves" in str(error)


def test_a_port_that_never_answers_names_the_connect_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts, never answers
        url = f"postgresql+psycopg://shadowlab:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/shadowlab"
        error = checked(url)
    assert isinstance(error, ServiceUnavailableError) and "timeout expired" in str(error), error
    assert "answers within SHADOWLAB_CONNECT_TIMEOUT_S" in str(error) and PASSWORD not in str(error)


def test_a_connection_ended_during_the_login_is_for_now() -> None:
    """A server that restarts, crashes or fails over (or a pooler in front of it) after it asked for the
    password: libpq sent it, so the server "answered", yet nothing is wrong with the URL."""
    asks = message(b"R", (3).to_bytes(4, "big"))  # a cleartext password, please
    with answering_once(asks, password_read=True) as url:
        error = checked(url)
    assert isinstance(error, ServiceUnavailableError) and error.exit_code == 3, error
    assert "server closed the connection unexpectedly" in str(error) and "try again" in str(error)
    assert PASSWORD not in str(error)


# --- after connecting: a statement failed, the login did not ------------------------------------------------


@pytest.mark.postgres
def test_a_user_who_may_not_read_the_tables_is_told_how_to_grant(pg_migrated: str) -> None:
    url = sa.engine.make_url(pg_migrated).set(username=APP_ROLE, password=APP_PASSWORD)
    error = checked(url.render_as_string(hide_password=False))  # a fresh database: nothing granted yet
    assert isinstance(error, ConfigError) and "permission denied for table alembic_version" in str(error)
    assert "shadowlab db grant-app" in str(error) and "login" not in str(error), error


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("role", "options", "said", "wanted"),
    [
        (True, "", "permission denied for schema public", "expected the database's owner"),
        (False, "-c default_transaction_read_only=on", "read-only transaction", "a server that takes writes"),
    ],
    ids=["the app role", "a read-only server"],
)
def test_a_migration_refused_is_a_setting(
    role: bool, options: str, said: str, wanted: str, pg_database: str, cli: CliRunner, tmp_path: Path
) -> None:
    url = sa.engine.make_url(pg_database)
    url = url.set(username=APP_ROLE, password=APP_PASSWORD) if role else url.set(query={"options": options})
    env = {"SHADOWLAB_DATABASE_URL": url.render_as_string(hide_password=False)}
    line = one_line(cli("db", "upgrade", env=env, cwd=tmp_path), 2)
    assert ": the migration was refused: " in line and said in line and wanted in line, line


@pytest.mark.postgres
def test_a_check_that_waits_past_its_lock_timeout_does_not_blame_the_login(pg_migrated: str) -> None:
    url = sa.engine.make_url(pg_migrated).set(query={"options": "-c lock_timeout=200"})
    holder = create_engine(pg_migrated)
    try:
        with holder.connect() as conn:  # as a `shadowlab db upgrade` would, while it migrates
            conn.execute(sa.text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
            error = checked(url.render_as_string(hide_password=False))
            conn.rollback()
    finally:
        holder.dispose()
    assert isinstance(error, ServiceUnavailableError) and "lock timeout" in str(error), error
    assert "did not finish" in str(error) and "password" not in str(error) and "login" not in str(error)


@pytest.mark.postgres
def test_a_connection_ended_mid_command_isone_line(pg_migrated: str, tmp_path: Path) -> None:
    """As a server restart or a failover would: the command waits on a lock, its session is terminated."""
    name = parse_database_url(pg_migrated).database
    waiting = sa.text(
        "SELECT pid FROM pg_stat_activity WHERE datname = :name AND wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    engine = create_engine(pg_migrated)
    try:
        with engine.connect() as holder, engine.connect() as admin:
            holder.execute(sa.text("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE"))  # after the check
            command = subprocess.Popen(
                [sys.executable, "-m", "shadowlab", "experiment", "list"],
                env=env | {"SHADOWLAB_DATABASE_URL": pg_migrated},
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            pids: list[int] = []

            def command_waits() -> bool:
                pids[:] = admin.execute(waiting, {"name": name}).scalars().all()
                admin.rollback()
                return bool(pids)

            wait_for(command_waits, "the command to wait on the lock")
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
            out, err = command.communicate(timeout=60)
            holder.rollback()
    finally:
        engine.dispose()
    line = one_line(subprocess.CompletedProcess(command.args, command.returncode, out, err), 3)
    assert line.startswith("error: database connection lost during the command: terminating connection")
    assert "SHADOWLAB_DATABASE_URL" in line


@pytest.mark.postgres
def test_a_connection_of_the_drivers_own_that_goes_is_lost_too(postgres_url: str) -> None:
    """Statements sent straight to psycopg (`driver_rows`, the async connections of the hot loops) raise its
    own errors, not SQLAlchemy's: the command's line is the same, and a failed statement is still not one."""
    import psycopg

    plain = (
        sa.engine.make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    raised: list[psycopg.Error] = []
    with psycopg.connect(plain, autocommit=True) as admin, psycopg.connect(plain, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as failed:
            conn.execute("SELECT 1/0")
        raised.append(failed.value)
        admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        for _ in range(2):  # the server's AdminShutdown, then psycopg's 'the connection is closed'
            with pytest.raises(psycopg.OperationalError) as failed:
                conn.execute("SELECT 1")
            raised.append(failed.value)
    division, ended, closed = raised
    assert unusable_during_command(division) is None
    for error in (ended, closed):
        line = unusable_during_command(error)
        assert isinstance(line, ServiceUnavailableError) and line.exit_code == 3, error
        assert str(line).startswith("database connection lost during the command: ")
