"""Engine and session factory for Postgres (psycopg 3) and SQLite (the embedded default)."""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from shadowlab import db_errors
from shadowlab.errors import ConfigError, ShadowlabError

if TYPE_CHECKING:
    from shadowlab.config import Settings

SUPPORTED_DRIVERS = ("postgresql+psycopg", "sqlite")
# Other names of the same drivers: libpq's and Heroku-style URLs say postgres(ql)://, and SQLAlchemy's full
# name of the standard library's sqlite3 is sqlite+pysqlite.
_DRIVER_NAMES = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "sqlite+pysqlite": "sqlite",
}
# Query arguments SQLAlchemy's sqlite3 dialect takes (it warns about and drops any other, unless uri=true).
_SQLITE_ARGS = ("timeout", "uri", "check_same_thread", "cached_statements", "detect_types", "isolation_level")
SQLITE_WAIT_S = 30.0  # how long a SQLite connection waits for another's write lock, unless the URL says
# An engine option: libpq's connect_timeout (SHADOWLAB_CONNECT_TIMEOUT_S) for connections of our own beside
# the engine's pool (`shadowlab.pg_async`'s lanes); an option is kept by `execution_options()` copies.
CONNECT_TIMEOUT_OPTION = "shadowlab_connect_timeout"


def parse_database_url(url: str) -> URL:
    """Parse and check a database URL; a malformed or unsupported one is a `ConfigError`."""
    try:
        parsed = sa.engine.make_url(url)
        port = parsed.port  # a port that is not a number is a ValueError of make_url, one out of range is not
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"SHADOWLAB_DATABASE_URL: expected a URL like postgresql+psycopg://user:pw@host:5432/db "
            f"or sqlite:///file.db, found {_redact(url)!r}"
        ) from None
    parsed = parsed.set(drivername=_DRIVER_NAMES.get(parsed.drivername, parsed.drivername))
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigError(
            "SHADOWLAB_DATABASE_URL: expected driver postgresql+psycopg (or postgresql) or sqlite, "
            f"found {parsed.drivername!r}"
        )
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"SHADOWLAB_DATABASE_URL: expected a port from 1 to 65535, found {port}")
    if parsed.drivername == "sqlite":
        _check_sqlite_query(parsed)
    if parsed.drivername.startswith("postgresql") and not parsed.database:
        raise ConfigError("SHADOWLAB_DATABASE_URL: expected a database name after the host, found none")
    for host in (parsed.host or "").split(","):
        if host and not _is_host(host):
            raise ConfigError(
                "SHADOWLAB_DATABASE_URL: expected a host name or an IP address (IPv6 in [brackets]), "
                f"found {host!r}"
            )
    return parsed


def _check_sqlite_query(url: URL) -> None:
    """SQLite's query arguments: known ones (SQLite's own need uri=true), `timeout` in seconds."""
    uri = url.query.get("uri") == "true"
    if uri and not (url.database or "").startswith("file:"):  # else SQLite takes 'x.db?mode=ro' as a file
        raise ConfigError(
            "SHADOWLAB_DATABASE_URL: expected sqlite:///file:NAME?…&uri=true for SQLite's URI arguments, "
            f"found {url.database!r} before them"
        )
    unknown = sorted(set(url.query) - set(_SQLITE_ARGS))
    if unknown and not uri:
        raise ConfigError(
            f"SHADOWLAB_DATABASE_URL: expected sqlite query arguments among {', '.join(_SQLITE_ARGS)} "
            "(SQLite's own, like mode=ro, in sqlite:///file:NAME?mode=ro&uri=true), "
            f"found {', '.join(unknown)}"
        )
    timeout = url.query.get("timeout")
    try:
        seconds = None if timeout is None else float(timeout)  # type: ignore[arg-type]  # a repeat is a tuple
    except (TypeError, ValueError):
        seconds = -1.0
    if seconds is not None and not 0 <= seconds < float("inf"):
        raise ConfigError(
            f"SHADOWLAB_DATABASE_URL: expected timeout= seconds to wait for a lock, found {timeout!r}"
        )


_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?\.?")


def _is_host(host: str) -> bool:
    """A DNS name (letters, digits, '.', '-', '_') or an IP address. Anything else (`[bad`, a space) would
    fail the DNS lookup and read as "unreachable", though it is the setting that is wrong. (An empty host is
    libpq's Unix socket and commas separate libpq's fallback hosts: the caller checks each of those.)"""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOST_NAME.fullmatch(host) is not None
    return True


def _redact(url: str) -> str:
    """Hide a password in a URL we could not parse (best effort: user:pw@ → user:***@, password=***)."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        url = f"{scheme}://{user}:***@{host}"
    return _SECRET_ARGUMENT.sub(r"\1***", url)


# libpq's query arguments that hold a secret (a password may be given as ?password=… instead of user:pw@)
_SECRET_ARGUMENT = re.compile(r"([?&](?:ssl)?password=)[^&]*", re.IGNORECASE)


def shown_url(url: URL) -> str:
    """`url` as messages show it: without its password, wherever it is given."""
    return _SECRET_ARGUMENT.sub(r"\1***", url.render_as_string(hide_password=True))


def psycopg_conninfo(url: URL) -> str:
    """libpq's connection string for a Postgres `url`, read as SQLAlchemy's dialect reads it (a URI of the URL
    reads several hosts otherwise: libpq's default port for all but the last of h1,h2:port, a host 'h:p')."""
    from psycopg.conninfo import make_conninfo

    _, params = sa.create_engine(url).dialect.create_connect_args(url)  # connects nothing
    return make_conninfo("", **{name: value for name, value in params.items() if name != "context"})


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(
    url: str, *, connect_timeout_s: float = 5.0, echo: bool = False, ping_after_idle_s: float | None = None
) -> Engine:
    """Create an engine; nothing is connected until first use (see `check_connection`). On Postgres a pooled
    connection idle for `ping_after_idle_s` (default `PING_AFTER_IDLE_S`) is pinged before it is used."""
    parsed = parse_database_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.drivername == "sqlite":
        kwargs["connect_args"] = {} if "timeout" in parsed.query else {"timeout": SQLITE_WAIT_S}
        engine = sa.create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    timeout = max(1, round(connect_timeout_s))
    kwargs["connect_args"] = {"connect_timeout": timeout}
    kwargs["execution_options"] = {CONNECT_TIMEOUT_OPTION: timeout}
    engine = sa.create_engine(parsed, **kwargs)
    after_s = PING_AFTER_IDLE_S if ping_after_idle_s is None else ping_after_idle_s
    event.listen(engine, "checkin", _idle_from)
    event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect, after_s))
    return engine


# A connection is pinged before use only after it sat idle in the pool (a restarted server, an idle timeout, a
# network cut): `pool_pre_ping` pings at every checkout, a round trip (~0.4 ms of client CPU) per transaction
# of every hot loop. A connection that dies while in use fails its statement; SQLAlchemy then invalidates the
# whole pool, so the next checkout connects anew.
PING_AFTER_IDLE_S = 1.0


def _idle_from(_dbapi_conn: object, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(
    dialect: sa.Dialect, after_s: float, dbapi_conn: Any, record: ConnectionPoolEntry, _proxy: object
) -> None:
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since < after_s:
        return  # just connected, or in use a moment ago
    try:
        dialect.do_ping(dbapi_conn)
    except Exception as exc:  # the pool connects anew (up to three times) on a DisconnectionError
        raise DisconnectionError(f"idle connection is dead: {exc}") from exc


def pg_unnest(types: Mapping[str, str], alias: str) -> str:
    """`unnest(CAST(:c AS type[]), …) WITH ORDINALITY AS alias(c, …, n)` for Postgres: a batch travels as one
    array parameter per column (`types`: column → SQL type), so its statement is one text whatever the batch
    size and psycopg parses and prepares it once; a multi-row VALUES is new SQL at each size, an executemany
    one statement per row. `n` numbers the rows in order."""
    arrays = ", ".join(f"CAST(:{column} AS {kind}[])" for column, kind in types.items())
    return f"unnest({arrays}) WITH ORDINALITY AS {alias}({', '.join(types)}, n)"


def pg_json_rows(types: Mapping[str, str], alias: str, param: str) -> str:
    """`ROWS FROM (jsonb_to_recordset(CAST(:param AS jsonb)) AS (c type, …)) WITH ORDINALITY AS alias(c, …,
    n)` for Postgres: a batch travels as one JSON parameter (`json_rows`), one text whatever the batch size.
    Where a hot loop sends a batch at every wave: psycopg dumps an array parameter element by element in
    Python (about 0.3 ms of client CPU for 16 rows of 9 columns), `json.dumps` is one call in C. `n` numbers
    the rows in order."""
    columns = ", ".join(f"{column} {kind}" for column, kind in types.items())
    return (
        f"ROWS FROM (jsonb_to_recordset(CAST(:{param} AS jsonb)) AS ({columns})) "
        f"WITH ORDINALITY AS {alias}({', '.join(types)}, n)"
    )


def json_rows(rows: Sequence[Mapping[str, Any]], columns: Iterable[str]) -> str:
    """The JSON parameter of `pg_json_rows`: `columns` of each row, a missing one null (datetimes in ISO 8601;
    floats exactly: the shortest text that reads back as the same double)."""
    names = tuple(columns)
    return json.dumps([{name: row.get(name) for name in names} for row in rows], default=_iso)


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"expected a JSON value or a datetime, found {type(value).__name__}")


@functools.lru_cache(maxsize=256)  # statements are module constants, or built once per queue (a claim)
def _driver_sql(statement: sa.ClauseElement, dialect: sa.Dialect) -> tuple[str, Mapping[str, Any]]:
    compiled = statement.compile(dialect=dialect)
    return compiled.string, compiled.params


def driver_rows(conn: sa.Connection, statement: sa.ClauseElement, params: Mapping[str, Any]) -> list[Any]:
    """Postgres: `statement` (compiled once; the values it binds itself, with `params`) sent straight to
    `conn`'s psycopg connection, prepared; its rows as named tuples. For the one-statement transactions of hot
    loops (a connection in autocommit): SQLAlchemy's execution path costs about 0.2 ms of client CPU per
    statement. Results come as psycopg reads them (JSON already parsed, no SQLAlchemy type processing). A
    broken connection is invalidated, as SQLAlchemy would."""
    import psycopg
    from psycopg.rows import namedtuple_row

    sql, bound = _driver_sql(statement, conn.dialect)
    driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    try:
        cursor = driver.cursor(row_factory=namedtuple_row)
        cursor.execute(sql, {**bound, **params}, prepare=True)
        return cursor.fetchall() if cursor.description is not None else []
    except psycopg.OperationalError:
        conn.invalidate()
        raise


def engine_from(settings: Settings, *, migrated: bool = True, create: bool = False) -> Engine:
    """The engine on SHADOWLAB_DATABASE_URL with SHADOWLAB_CONNECT_TIMEOUT_S, checked once by
    `check_connection` (`migrated` and `create` as there): every command builds its engine here, so a
    missing, unreachable or unmigrated database is one clear error line before any work starts."""
    engine = create_engine(settings.database_url, connect_timeout_s=settings.connect_timeout_s)
    check_connection(engine, migrated=migrated, create=create)
    return engine


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # Let SQLAlchemy emit BEGIN itself so that `begin` can take the write lock up front (BEGIN IMMEDIATE):
    # embedded mode's leases and budget rely on it (DESIGN §1).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def sqlite_file(url: URL) -> Path | None:
    """A SQLite URL's file (relative to the working directory); None for in-memory or other databases."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("uri") or url.database.startswith("file:"):
        return None  # a SQLite URI names its own mode (e.g. memory); sqlite3 checks it
    return Path(url.database)


def check_connection(engine: Engine, *, migrated: bool = True, create: bool = False) -> None:
    """Check, in one clear error line, that the database is usable: it exists (a SQLite file is created
    only with `create`, which `shadowlab db upgrade` passes), it answers, and, unless `migrated=False`, its
    schema is at the code's head revision."""
    where = shown_url(engine.url)
    if engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, "", ":memory:"):
        raise ConfigError(
            f"database {where}: expected a SQLite file, like sqlite:///shadowlab.db "
            "(SHADOWLAB_DATABASE_URL): an in-memory database starts empty in every command, so "
            "`shadowlab db upgrade` cannot prepare it"
        )
    path = sqlite_file(engine.url)
    if path is not None:
        _check_sqlite_path(path, where, create=create)
    try:
        conn = engine.connect()
    except DBAPIError as exc:
        raise database_error(engine.url, exc) from None
    except NoSuchModuleError as exc:  # pragma: no cover - driver missing from the install
        raise ConfigError(f"SHADOWLAB_DATABASE_URL: database driver not installed ({exc})") from None
    with conn:
        try:
            conn.execute(sa.text("select 1"))
            if migrated:
                from shadowlab.migrate import check_revision

                check_revision(conn, where)
        except DBAPIError as exc:  # connected: a statement failed, the login did not
            raise database_error(engine.url, exc, connected=True) from None


def database_error(url: URL, error: BaseException, *, connected: bool = False) -> ShadowlabError:
    """The one error line for a database at `url` that could not be used: `error` is the driver's (or
    SQLAlchemy's wrapping of it) from connecting, or from a statement once `connected`. A setting to fix is a
    `ConfigError`, a server out of reach a `ServiceUnavailableError`; the hint fits what happened
    (`shadowlab.db_errors`)."""
    lost = isinstance(error, DBAPIError) and error.connection_invalidated
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    where = shown_url(url)
    if url.get_backend_name() == "sqlite":
        return db_errors.sqlite_error(where, cause, wait_s=sqlite_wait_s(url))
    if connected:
        return db_errors.statement_error(where, cause, lost=lost)
    return db_errors.connect_error(where, cause)


def upgrade_failed(url: URL, error: BaseException) -> ShadowlabError | None:
    """The one error line for `shadowlab db upgrade` whose migration failed on the Postgres database at `url`
    for a reason the user can act on (a role that may not create tables, a read-only server, a lock, a lost
    connection: `db_errors.upgrade_error`); None for any other error."""
    if url.get_backend_name() != "postgresql" or not isinstance(error, DBAPIError) or error.orig is None:
        return None
    return db_errors.upgrade_error(shown_url(url), error.orig, lost=error.connection_invalidated)


def unusable_during_command(error: BaseException) -> ShadowlabError | None:
    """The one error line for a command whose database became unusable as it worked (`error`): its Postgres
    connection went (SQLAlchemy's error, or psycopg's own: `driver_rows`, a stage's own psycopg connection) or
    its server is in trouble (out of disk, memory or connections, an I/O error, corruption: SQLSTATE class 53,
    58, XX), or its SQLite file stayed locked by another process past the wait; None for any other error."""
    if isinstance(error, DBAPIError):
        if error.orig is None:
            return None
        if isinstance(error.orig, sqlite3.Error):
            return db_errors.locked_during_command(error.orig)
        return db_errors.failed_during_command(error.orig, lost=error.connection_invalidated)
    psycopg = sys.modules.get("psycopg")  # loaded if `error` can be one of its errors
    if psycopg is None or not isinstance(error, psycopg.Error):
        return None
    # psycopg's own words, no SQLSTATE: the connection is closed, lost, or could not be made again
    lost = isinstance(error, psycopg.OperationalError) and not error.sqlstate and "connection" in str(error)
    return db_errors.failed_during_command(error, lost=lost)


def sqlite_wait_s(url: URL) -> float:
    """How long a connection to the SQLite database at `url` waits for another's write lock."""
    timeout = url.query.get("timeout")
    return float(timeout) if isinstance(timeout, str) else SQLITE_WAIT_S


def _check_sqlite_path(path: Path, where: str, *, create: bool) -> None:
    """A SQLite file that is missing (made only with `create`), a folder, or in a folder that does not exist:
    a `ConfigError` (SQLite itself says only "unable to open database file")."""
    if path.is_dir():
        raise ConfigError(
            f"database {where}: expected a file, found the folder {path.resolve()} (SHADOWLAB_DATABASE_URL)"
        )
    if path.exists():
        return
    if not create:
        raise ConfigError(
            f"database {where}: no such file {path.resolve()} (SHADOWLAB_DATABASE_URL): "
            "run `shadowlab db upgrade` to create it"
        )
    if not path.resolve().parent.is_dir():
        raise ConfigError(
            f"database {where}: no such folder {path.resolve().parent} to create the file in "
            "(SHADOWLAB_DATABASE_URL)"
        )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    with factory() as session, session.begin():
        yield session
