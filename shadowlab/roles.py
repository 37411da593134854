"""The app's database role: it reads and writes rows but owns nothing (Postgres).

Migrations run as the tables' owner; the services (ingest, replay, score, dashboard) connect as a role
granted here. A role that does not own a table cannot `ALTER TABLE … DISABLE TRIGGER`, `DROP TRIGGER` or
`TRUNCATE` it, so the decisions' immutability triggers hold against the app's own credentials. Decisions,
experiment changes and the forget list are granted SELECT and INSERT only; the rest SELECT, INSERT, UPDATE
and DELETE.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shadowlab.errors import ConfigError
from shadowlab.models import TABLES

# Rows that are written once and never changed by the app.
APPEND_ONLY = ("decisions", "experiment_changes", "forgotten_users")


def grant_app_role(engine: Engine, role: str) -> list[str]:
    """Grant `role` what the services need on every table of the schema; the statements run, in order."""
    if engine.dialect.name != "postgresql":
        raise ConfigError("db grant-app: roles exist on Postgres only (SQLite has no users)")
    with engine.begin() as conn:
        if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is None:
            raise ConfigError(
                f"ROLE: expected an existing Postgres role, found {role!r} (CREATE ROLE … LOGIN first)"
            )
        owner = conn.execute(sa.text("SELECT current_user")).scalar_one()
        if owner == role:
            raise ConfigError(f"ROLE: expected a role other than the tables' owner {owner!r}")
        quoted = conn.dialect.identifier_preparer.quote(role)
        statements = [
            f"GRANT USAGE ON SCHEMA public TO {quoted}",
            f"GRANT SELECT ON alembic_version TO {quoted}",
        ]
        for table in TABLES:
            rights = "SELECT, INSERT" if table.name in APPEND_ONLY else "SELECT, INSERT, UPDATE, DELETE"
            statements.append(f"GRANT {rights} ON {table.name} TO {quoted}")
        statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
        for statement in statements:
            conn.execute(sa.text(statement))
    return statements
