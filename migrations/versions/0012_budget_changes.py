"""budget_changes: who set an experiment's budget, when, from what to what

`shadowlab experiment budget` writes one row per change. The app role may only insert into it
(`shadowlab.roles.APPEND_ONLY`); the rows go with their experiment (ON DELETE CASCADE).

Revision ID: 0012_budget_changes
Revises: 0011_scores_created_at
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_budget_changes"
down_revision: str | None = "0011_scores_created_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "budget_changes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("before_usd", sa.Float(), nullable=True),
        sa.Column("after_usd", sa.Float(), nullable=False),
        sa.Column("committed_usd", sa.Float(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE",
                                name=op.f("fk_budget_changes_experiment_id_experiments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_changes")),
    )  # fmt: skip
    op.create_index(
        "ix_budget_changes_experiment_id_changed_at", "budget_changes", ["experiment_id", "changed_at"]
    )


def downgrade() -> None:
    op.drop_table("budget_changes")
