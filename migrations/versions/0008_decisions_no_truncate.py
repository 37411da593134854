"""decisions cannot be truncated: a statement trigger refuses TRUNCATE (Postgres; SQLite has no TRUNCATE)

Row triggers (0003) refuse UPDATE and DELETE, but TRUNCATE fires no row trigger. Together with the app
connecting as a role that does not own the tables (`shadowlab db grant-app`), nobody but the owner can
disable or drop these triggers.

Revision ID: 0008_decisions_no_truncate
Revises: 0007_forget_list
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_decisions_no_truncate"
down_revision: str | None = "0007_forget_list"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE FUNCTION decisions_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'decisions are immutable: TRUNCATE would erase the audit trail'
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)
        op.execute(
            "CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions "
            "FOR EACH STATEMENT EXECUTE FUNCTION decisions_no_truncate()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS decisions_no_truncate ON decisions")
        op.execute("DROP FUNCTION IF EXISTS decisions_no_truncate()")
