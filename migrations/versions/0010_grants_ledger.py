"""per-worker rate-limit grants and the budget ledger (issue 22)

Workers heartbeat (`worker_heartbeats`) and hold a share of each provider+model limit
(`rate_limit_grants`); the per-call log `rate_limit_events` is gone. Each experiment's committed money is
kept as running sums (`budget_ledgers`), backfilled here from the reservations and judge calls.

Revision ID: 0010_grants_ledger
Revises: 0009_score_tasks
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_grants_ledger"
down_revision: str | None = "0009_score_tasks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)

_BACKFILL = """
INSERT INTO budget_ledgers (experiment_id, replay_usd, holdback_usd, judge_usd, unsettled, updated_at)
SELECT e.id,
       COALESCE((SELECT SUM(COALESCE(r.settled_usd, r.reserved_usd)) FROM budget_reservations r
                 WHERE r.experiment_id = e.id), 0),
       COALESCE((SELECT SUM(r.judge_usd) FROM budget_reservations r WHERE r.experiment_id = e.id), 0),
       COALESCE((SELECT SUM(COALESCE(j.settled_usd, j.reserved_usd)) FROM judge_calls j
                 WHERE j.experiment_id = e.id), 0),
       (SELECT COUNT(*) FROM budget_reservations r WHERE r.experiment_id = e.id AND r.settled_usd IS NULL),
       CURRENT_TIMESTAMP
FROM experiments e
"""


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("heartbeat_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_heartbeats")),
    )
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_heartbeats_expires_at"), ["expires_at"], unique=False)
    op.create_table(
        "rate_limit_grants",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("worker_id", sa.String(200), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=True) for name in ("rpm", "input_tpm", "output_tpm",
                                                                      "concurrency")),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in ("rpm_extra", "input_extra",
                                                                       "output_extra", "concurrency_extra",
                                                                       "used_requests")),
        sa.Column("extra_until", _TS, nullable=True),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("counted_until", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("key", "worker_id", name=op.f("pk_rate_limit_grants")),
    )  # fmt: skip
    op.create_table(
        "budget_ledgers",
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("replay_usd", sa.Float(), nullable=False),
        sa.Column("holdback_usd", sa.Float(), nullable=False),
        sa.Column("judge_usd", sa.Float(), nullable=False),
        sa.Column("unsettled", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_budget_ledgers_experiment_id_experiments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", name=op.f("pk_budget_ledgers")),
    )  # fmt: skip
    op.execute(_BACKFILL)
    with op.batch_alter_table("rate_limit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_rate_limit_events_key_sent_at")
    op.drop_table("rate_limit_events")


def downgrade() -> None:
    op.create_table(
        "rate_limit_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("sent_at", _TS, nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("inflight_until", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_events")),
    )
    with op.batch_alter_table("rate_limit_events", schema=None) as batch_op:
        batch_op.create_index("ix_rate_limit_events_key_sent_at", ["key", "sent_at"], unique=False)
    op.drop_table("budget_ledgers")
    op.drop_table("rate_limit_grants")
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_heartbeats_expires_at"))
    op.drop_table("worker_heartbeats")
