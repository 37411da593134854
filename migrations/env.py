"""Alembic environment: the models' metadata, batch mode on SQLite, a connection handed in or a URL.

Each migration runs in its own transaction, which also moves `alembic_version` to it: an upgrade that fails
in migration K leaves the database at K-1, and running it again resumes there. A migration may so leave its
transaction for work Postgres does outside one (`autocommit_block`: 0013's `CREATE INDEX CONCURRENTLY`)
without committing the migrations before it halfway. The connection handed in must not be in a transaction
(Alembic would then take that one as the whole upgrade's and begin none of its own)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from shadowlab.db import create_engine
from shadowlab.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        if connection.in_transaction():
            raise RuntimeError("expected a connection not in a transaction: each migration begins its own")
        _configure(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
