"""replays: the experiment's replay id span from an index (issue 23)

`analyze`, `report`, `route` and the dashboard's snapshot read an experiment's scores by its replays' id range
when the replays fill it (`store.scorers.replay_span`: the smallest and largest replay id and how many there
are). Finding that span was a scan of the experiment's replays (~0.3 s of Postgres' CPU at a million), so the
scores' read had to wait for the replays' own read to find it on the way. The index on (experiment_id,
status) now ends in the replay id: each status' smallest and largest id are two index lookups and the count an
index-only scan, so the scores are read beside the replays. Extending the index rather than adding one keeps
the replayer's inserts at the same number of index writes.

Revision ID: 0013_replays_span_index
Revises: 0012_experiment_changes
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013_replays_span_index"
down_revision: str | None = "0012_experiment_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_replays_experiment_id_status_id", "replays", ["experiment_id", "status", "id"])
    op.drop_index("ix_replays_experiment_id_status", table_name="replays")


def downgrade() -> None:
    op.create_index("ix_replays_experiment_id_status", "replays", ["experiment_id", "status"])
    op.drop_index("ix_replays_experiment_id_status_id", table_name="replays")
