"""judge spend in the experiment budget: one row per judge call, and the judge holdback of each reservation

Revision ID: 0004_judge_spend
Revises: 0003_decisions_immutable
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_judge_spend"
down_revision: str | None = "0003_decisions_immutable"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("budget_reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("judge_usd", sa.Float(), server_default="0", nullable=False))
    op.create_table(
        "judge_calls",
        sa.Column("id", _ID, nullable=False),
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("scorer_name", sa.String(length=100), nullable=False),
        sa.Column("scorer_version", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("captured_request_id", _ID, nullable=True),
        sa.Column("replay_id", _ID, nullable=True),
        sa.Column("arm_b_id", _ID, nullable=True),
        sa.Column("order_shown", sa.String(length=2), nullable=True),
        sa.Column("reserved_usd", sa.Float(), nullable=False),
        sa.Column("settled_usd", sa.Float(), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["arm_b_id"], ["arms.id"], name=op.f("fk_judge_calls_arm_b_id_arms"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["captured_request_id"],
            ["captured_requests.id"],
            name=op.f("fk_judge_calls_captured_request_id_captured_requests"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_judge_calls_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["replay_id"], ["replays.id"], name=op.f("fk_judge_calls_replay_id_replays"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judge_calls")),
    )
    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.create_index(
            "ix_judge_calls_experiment_id_scorer", ["experiment_id", "scorer_name"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("judge_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_judge_calls_experiment_id_scorer")
    op.drop_table("judge_calls")
    with op.batch_alter_table("budget_reservations", schema=None) as batch_op:
        batch_op.drop_column("judge_usd")
