"""budget_reservations.charged_usd: what attempts whose worker died may have cost, counted for good

A worker killed after its calls went out leaves its reservation open; the worker that takes its lease over
used to settle that reservation to the cost of its own calls only, so the provider's bill for the dead
worker's calls never reached the ledger and a hard budget did not bound what was billed. A take-over now
charges the dead attempt's worst case into `charged_usd` (0 for every existing row) and settlement adds it
(`shadowlab.budget_recovery`).

Revision ID: 0014_reservations_charged
Revises: 0013_replays_span_index
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_reservations_charged"
down_revision: str | None = "0013_replays_span_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("budget_reservations") as batch:
        batch.add_column(sa.Column("charged_usd", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("budget_reservations") as batch:
        batch.drop_column("charged_usd")
