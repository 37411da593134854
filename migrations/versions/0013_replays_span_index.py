"""replays: the experiment's replay id span from an index (issue 23)

`analyze`, `report`, `route` and the dashboard's snapshot read an experiment's scores by its replays' id range
when the replays fill it (`store.scorers.replay_span`: the smallest and largest replay id and how many there
are). Finding that span was a scan of the experiment's replays (~0.3 s of Postgres' CPU at a million), so the
scores' read had to wait for the replays' own read to find it on the way. The index on (experiment_id,
status) now ends in the replay id: each status' smallest and largest id are two index lookups and the count an
index-only scan, so the scores are read beside the replays. Extending the index rather than adding one keeps
the replayer's inserts at the same number of index writes.

On Postgres the index is built and the old one dropped CONCURRENTLY, outside the migration's transaction
(env.py runs one per migration): a plain CREATE INDEX holds a SHARE lock on `replays` for the whole build, so
every replayer insert and update waited for it (minutes at millions of rows). A concurrent build that fails
(cancelled, a lost connection) leaves an INVALID index of that name behind, which IF NOT EXISTS would keep:
it is dropped first, so `shadowlab db upgrade` run again builds it anew. SQLite (embedded, one writer) keeps
the plain statements.

Revision ID: 0013_replays_span_index
Revises: 0012_experiment_changes
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_replays_span_index"
down_revision: str | None = "0012_experiment_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WITH_ID = "ix_replays_experiment_id_status_id"
WITHOUT_ID = "ix_replays_experiment_id_status"


def upgrade() -> None:
    _replace(WITHOUT_ID, WITH_ID, ["experiment_id", "status", "id"])


def downgrade() -> None:
    _replace(WITH_ID, WITHOUT_ID, ["experiment_id", "status"])


def _replace(old: str, new: str, columns: list[str]) -> None:
    """Index `replays` on `columns` as `new`, then drop `old`; on Postgres without blocking writes, and so
    that a run interrupted anywhere runs again to the end."""
    context = op.get_context()
    if context.dialect.name != "postgresql":
        op.create_index(new, "replays", columns)
        op.drop_index(old, table_name="replays")
        return
    with context.autocommit_block():
        if not context.as_sql and _invalid(new):
            op.drop_index(new, table_name="replays", postgresql_concurrently=True, if_exists=True)
        op.create_index(new, "replays", columns, postgresql_concurrently=True, if_not_exists=True)
        op.drop_index(old, table_name="replays", postgresql_concurrently=True, if_exists=True)


def _invalid(name: str) -> bool:
    """An index `name` is left INVALID by a concurrent build that failed (none of that name: False)."""
    valid = op.get_bind().scalar(
        sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": name}
    )
    return valid is False
