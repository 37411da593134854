"""an index on scores.created_at (issue 26)

The dashboard asks, on every page that shows the analysis, what arrived after the latest snapshot
(`store.snapshots.new_since`): scores stored after a moment. Without an index that is a scan of every score.

Revision ID: 0011_scores_created_at
Revises: 0010_grants_ledger
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_scores_created_at"
down_revision: str | None = "0010_grants_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_scores_created_at", "scores", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_scores_created_at", table_name="scores")
