"""Throw-away databases on the test Postgres, for fixtures of any scope (`pg_database`, module fixtures)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fresh_database(postgres_url: str, template: str | None = None) -> Iterator[str]:
    """A new database on the test server (its URL), dropped on exit; for any fixture scope. Empty, or a copy
    of `template` (see `migrated_template`)."""
    import sqlalchemy as sa

    name = f"shadowlab_test_{uuid.uuid4().hex[:12]}"
    # pre-ping: a session fixture's database outlives the services' restart test (its pooled connection not)
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    url = sa.engine.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        try:
            _drop_database(admin, name)
        finally:
            admin.dispose()


def _drop_database(admin: object, name: str, attempts: int = 5) -> None:
    """Drop a test database; a background worker (autovacuum) may hold it for a moment, so retry briefly."""
    import time

    import sqlalchemy as sa

    assert isinstance(admin, sa.Engine)
    for attempt in range(attempts):
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except sa.exc.DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)  # backoff between retries of a failed statement, not a wait


@contextmanager
def migrated_template(postgres_url: str) -> Iterator[str]:
    """The name of a database at the migrations' head that serves only as a template, dropped on exit.

    A copy of it takes about 0.1 s where a new database plus the migrations take 1-2 s. It accepts no
    connections, so no session (autovacuum included) can hold it while a copy is made.
    """
    import sqlalchemy as sa

    from shadowlab import migrate
    from shadowlab.db import create_engine

    with fresh_database(postgres_url) as url:
        engine = create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        name = str(sa.engine.make_url(url).database)
        admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false'))
        try:
            yield name
        finally:
            with admin.connect() as conn:  # a template cannot be dropped
                conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false'))
            admin.dispose()
