"""decisions are immutable: triggers refuse UPDATE and DELETE of a decision

A decision is never edited: a new one supersedes it. Two changes stay possible, both made by the
database's own referential actions:
- deleting an experiment deletes its decisions (the trigger lets a DELETE through once the decision's
  experiment row is gone);
- deleting an analysis snapshot sets `analysis_snapshot_id` to NULL (ON DELETE SET NULL); the snapshot's
  content stays in the decision's `evidence`.

SQLite note: a later migration that rebuilds `decisions` with `batch_alter_table` drops these triggers and
must create them again.

Revision ID: 0003_decisions_immutable
Revises: 0002_rate_limits
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_decisions_immutable"
down_revision: str | None = "0002_rate_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MESSAGE = "decisions are immutable: declare a new decision that supersedes this one"
_OTHER_COLUMNS = (
    "id, experiment_id, verdict, winner_arm, computed_verdict, is_override, decided_by, decided_at, "
    "reason, evidence, supersedes_id"
)

_PG_FUNCTION = f"""
CREATE FUNCTION decisions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.analysis_snapshot_id IS NULL
           AND to_jsonb(NEW) - 'analysis_snapshot_id' = to_jsonb(OLD) - 'analysis_snapshot_id' THEN
            RETURN NEW;
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM experiments WHERE id = OLD.experiment_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '{_MESSAGE} (decision %, %)', OLD.id, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""

_PG_TRIGGER = (
    "CREATE TRIGGER decisions_immutable BEFORE UPDATE OR DELETE ON decisions "
    "FOR EACH ROW EXECUTE FUNCTION decisions_immutable()"
)

_SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER decisions_no_update BEFORE UPDATE OF {_OTHER_COLUMNS} ON decisions
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END""",
    f"""CREATE TRIGGER decisions_no_relink BEFORE UPDATE OF analysis_snapshot_id ON decisions
    WHEN NEW.analysis_snapshot_id IS NOT NULL
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END""",
    f"""CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
    WHEN EXISTS (SELECT 1 FROM experiments WHERE id = OLD.experiment_id)
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END""",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS decisions_immutable ON decisions")
        op.execute("DROP FUNCTION IF EXISTS decisions_immutable()")
    else:
        for name in ("decisions_no_update", "decisions_no_relink", "decisions_no_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
