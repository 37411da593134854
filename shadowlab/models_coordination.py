"""Tables that let many worker processes share limits and money (`shadowlab.limits`, `shadowlab.budget`).

Imported by `shadowlab.models` (so `models.TABLES` lists them and every import path sees one metadata).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shadowlab.models import Base, utcnow

__all__ = ["BudgetLedger", "RateLimitGrant", "RateLimitKey", "WorkerHeartbeat"]


class WorkerHeartbeat(Base):
    """A live worker process (replayer or scorer): it heartbeats, and is dead once `expires_at` passed."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RateLimitKey(Base):
    """A provider+model limit shared by all workers; its row lock serialises grant changes of the key, and
    `blocked_until` is a `retry-after` every worker honours."""

    __tablename__ = "rate_limit_keys"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    blocked_until: Mapped[datetime | None]


class RateLimitGrant(Base):
    """One worker's share of one key's limits (None: the limit has no such dimension).

    `*_extra` is what the worker may still have sent in the current window beyond a share it just gave
    up (counted for the others until `extra_until`); a dead worker's rate shares count until
    `counted_until` (its last sends leave the window), its concurrency only until `expires_at`."""

    __tablename__ = "rate_limit_grants"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    worker_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    rpm: Mapped[int | None] = mapped_column(sa.BigInteger)
    input_tpm: Mapped[int | None] = mapped_column(sa.BigInteger)
    output_tpm: Mapped[int | None] = mapped_column(sa.BigInteger)
    concurrency: Mapped[int | None] = mapped_column(sa.BigInteger)
    rpm_extra: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    input_extra: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    output_extra: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    concurrency_extra: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    extra_until: Mapped[datetime | None]
    used_requests: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # in its last window (dashboard)
    expires_at: Mapped[datetime]
    counted_until: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BudgetLedger(Base):
    """An experiment's committed money as running sums, updated by conditional statements (no scans).

    committed = replay_usd + max(0, judge_usd − holdback_usd); `budget_reservations` and `judge_calls`
    keep the rows these sums are made of (audit, crash recovery)."""

    __tablename__ = "budget_ledgers"

    experiment_id: Mapped[int] = mapped_column(
        sa.ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    replay_usd: Mapped[float] = mapped_column(
        sa.Float, default=0.0
    )  # worst case until settled, judge holdback in
    holdback_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    judge_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)  # worst case until settled
    unsettled: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # replay reservations not settled yet
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
