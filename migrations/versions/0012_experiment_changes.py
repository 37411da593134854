"""experiment changes: an append-only trail of budget changes and status transitions

Who set the budget or paused, resumed, started or concluded an experiment, when, from what to what and why
(`shadowlab.store.changes`). Like decisions (0003, 0008), the database refuses an UPDATE, a DELETE while the
experiment exists (deleting the experiment deletes its trail) and, on Postgres, a TRUNCATE.

Revision ID: 0012_experiment_changes
Revises: 0011_scores_created_at
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_experiment_changes"
down_revision: str | None = "0011_scores_created_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_MESSAGE = "experiment changes are an audit trail: they are never edited or deleted"

_PG_FUNCTIONS = (
    f"""
CREATE FUNCTION experiment_changes_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM experiments WHERE id = OLD.experiment_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '{_MESSAGE} (change %, %)', OLD.id, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
""",
    f"""
CREATE FUNCTION experiment_changes_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{_MESSAGE}: TRUNCATE would erase it' USING ERRCODE = 'integrity_constraint_violation';
END
$$
""",
    "CREATE TRIGGER experiment_changes_immutable BEFORE UPDATE OR DELETE ON experiment_changes "
    "FOR EACH ROW EXECUTE FUNCTION experiment_changes_immutable()",
    "CREATE TRIGGER experiment_changes_no_truncate BEFORE TRUNCATE ON experiment_changes "
    "FOR EACH STATEMENT EXECUTE FUNCTION experiment_changes_no_truncate()",
)

_SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER experiment_changes_no_update BEFORE UPDATE ON experiment_changes
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END""",
    f"""CREATE TRIGGER experiment_changes_no_delete BEFORE DELETE ON experiment_changes
    WHEN EXISTS (SELECT 1 FROM experiments WHERE id = OLD.experiment_id)
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END""",
)


def upgrade() -> None:
    op.create_table(
        "experiment_changes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("before", sa.String(64), nullable=True),
        sa.Column("after", sa.String(64), nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint("field IN ('budget', 'status')", name=op.f("ck_experiment_changes_field")),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE",
                                name=op.f("fk_experiment_changes_experiment_id_experiments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_changes")),
    )  # fmt: skip
    op.create_index(
        "ix_experiment_changes_experiment_id_changed_at",
        "experiment_changes",
        ["experiment_id", "changed_at"],
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_FUNCTIONS if postgres else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS experiment_changes_no_truncate ON experiment_changes")
        op.execute("DROP TRIGGER IF EXISTS experiment_changes_immutable ON experiment_changes")
        op.execute("DROP FUNCTION IF EXISTS experiment_changes_no_truncate()")
        op.execute("DROP FUNCTION IF EXISTS experiment_changes_immutable()")
    op.drop_index("ix_experiment_changes_experiment_id_changed_at", table_name="experiment_changes")
    op.drop_table("experiment_changes")
