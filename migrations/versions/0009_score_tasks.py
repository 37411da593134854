"""score tasks: judging work leased like replays, so any number of `shadowlab score` processes judge each
item once and a killed one's items are taken over (scoring/tasks.py)

Revision ID: 0009_score_tasks
Revises: 0008_decisions_no_truncate
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_score_tasks"
down_revision: str | None = "0008_decisions_no_truncate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "score_tasks",
        sa.Column("id", _ID, nullable=False),
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("scorer_name", sa.String(100), nullable=False),
        sa.Column("scorer_version", sa.String(64), nullable=False),
        sa.Column("captured_request_id", _ID, nullable=False),
        sa.Column("arm_id", _ID, nullable=False),
        sa.Column("order_shown", sa.String(2), nullable=False),
        sa.Column("replay_id", _ID, nullable=True),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE",
                                name=op.f("fk_score_tasks_experiment_id_experiments")),
        sa.ForeignKeyConstraint(["captured_request_id"], ["captured_requests.id"], ondelete="CASCADE",
                                name=op.f("fk_score_tasks_captured_request_id_captured_requests")),
        sa.ForeignKeyConstraint(["arm_id"], ["arms.id"], ondelete="CASCADE",
                                name=op.f("fk_score_tasks_arm_id_arms")),
        sa.ForeignKeyConstraint(["replay_id"], ["replays.id"], ondelete="CASCADE",
                                name=op.f("fk_score_tasks_replay_id_replays")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_tasks")),
        sa.UniqueConstraint("experiment_id", "scorer_name", "scorer_version", "captured_request_id", "arm_id",
                            "order_shown", name="uq_score_tasks_item"),
    )  # fmt: skip
    op.create_index(
        "ix_score_tasks_open", "score_tasks", ["experiment_id", "scorer_name", "scorer_version", "done", "id"]
    )
    op.create_index(op.f("ix_score_tasks_captured_request_id"), "score_tasks", ["captured_request_id"])


def downgrade() -> None:
    op.drop_table("score_tasks")
