"""Run Alembic from the installed package: no alembic.ini needed, works from a wheel.

Alembic itself is imported only by what migrates (`upgrade`, `downgrade`, `scripts`): the schema check every
command makes (`check_revision`) reads the code's revisions from the migration files' names and the
database's from `alembic_version`, so a command does not pay for importing Alembic (≈ 0.3 s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shadowlab.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

VERSION_TABLE = "alembic_version"
# the key of the Postgres advisory lock a migration run holds (per database): "shlmigra" in ASCII
_MIGRATING = 0x73686C6D69677261
_POLL_S = 0.2
WAITING = "shadowlab db upgrade: waiting for another to end"


class NotMigratedError(ConfigError):
    """The database's schema is not the one this code was written for (none, older or newer)."""


def _location() -> str:
    return str(files("migrations"))


def scripts() -> ScriptDirectory:
    """The shipped `migrations` folder's revisions."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(_location())


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at the shipped `migrations` folder, bound to `engine`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _location())
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def _run(engine: Engine, action: Any, revision: str) -> None:
    from alembic.util import CommandError

    config = alembic_config(engine)
    try:
        # not in a transaction: env.py commits each migration on its own (a failed one leaves the others')
        with engine.connect() as conn, _one_at_a_time(conn):
            config.attributes["connection"] = conn
            action(config, revision)
    except CommandError as exc:  # an unknown revision, or one on the wrong side of the database's
        known = known_revisions()
        raise ConfigError(
            f"revision {revision!r}: {exc}; expected head, base or one of {known[0]} … {known[-1]}"
        ) from None


@contextmanager
def _one_at_a_time(conn: Connection) -> Iterator[None]:
    """On Postgres, wait until no other upgrade or downgrade runs on the database, and hold it off until
    this one ends: a session advisory lock, which outlives the transaction of each migration (alembic_version
    has no lock of its own, and two runs would run the same migration side by side). SQLite: one writer.

    Taken by polling between transactions, not by waiting in one: 0013's CREATE INDEX CONCURRENTLY waits for
    every transaction open in the database, so a run waiting in one for the lock the builder holds deadlocks
    (40P01 when the builder's was the first run's). While it waits, its session's application_name says so
    (`WAITING`, in pg_stat_activity)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    if not conn.scalar(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _MIGRATING}):
        conn.execute(sa.text("SELECT set_config('application_name', :name, false)"), {"name": WAITING})
        while not conn.scalar(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _MIGRATING}):
            conn.commit()
            time.sleep(_POLL_S)  # between tries, in no transaction
        conn.execute(sa.text("RESET application_name"))  # the URL's, or none
    conn.commit()  # env.py takes a connection not in a transaction; the session's lock stays
    try:
        yield
    finally:
        if not (conn.invalidated or conn.closed):  # else the server ended the session, and with it the lock
            conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATING})
            conn.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    _run(engine, command.downgrade, revision)


def known_revisions() -> list[str]:
    """The code's revisions, oldest first: each migration file is named after its revision id with a
    four-digit sequence number first (tests/shadowlab/test_migrations.py checks this against Alembic's
    own reading of the files, so the two cannot drift)."""
    versions = files("migrations").joinpath("versions")
    names = (entry.name for entry in versions.iterdir())
    return sorted(name[:-3] for name in names if name.endswith(".py") and name[:4].isdigit())


def head_revision(engine: Engine | None = None) -> str | None:
    """The code's newest revision (the history is linear)."""
    revisions = known_revisions()
    return revisions[-1] if revisions else None


def database_revision(conn: Connection) -> str | None:
    """The database's revision from `alembic_version`; None when it has none (never migrated, or `base`)."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalars().all()
    return ", ".join(sorted(rows)) or None


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return database_revision(conn)


def check_revision(conn: Connection, where: str) -> str:
    """The database's revision when it is the code's head; else a `NotMigratedError` saying what to run."""
    known = known_revisions()
    head = known[-1] if known else None
    current = database_revision(conn)
    if current == head and current is not None:
        return current
    if current is not None and current not in known:
        raise NotMigratedError(
            f"database {where}: revision {current} is newer than this shadowlab knows (its head is {head}): "
            "upgrade shadowlab"
        )
    raise NotMigratedError(
        f"database {where}: not migrated (revision {current or 'none'}, expected {head}): "
        "run `shadowlab db upgrade`"
    )
