"""The data model (DESIGN §8) as SQLAlchemy 2.0 typed tables, for Postgres (JSONB) and SQLite (JSON).

Unique keys carry idempotency: a capture is stored once per `request_id`, a replay once per
(arm, request), a score once per (replay, scorer, version). Rows derived from a capture cascade
from it, so `forget` and `retention` delete a capture and everything computed from it in one statement.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ExperimentStatus = Literal["draft", "running", "paused", "budget_exhausted", "concluded"]
ArmRole = Literal["control", "candidate", "aa"]
ReplayStatus = Literal["ok", "error"]
PreferenceResult = Literal["a", "b", "tie"]
OrderShown = Literal["ab", "ba"]
Verdict = Literal["ship", "dont_ship", "keep_running", "inconclusive"]
ChangedField = Literal["budget", "status"]

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
BigId: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType, datetime: Timestamp}


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (_one_of("status", get_args(ExperimentStatus), "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    status: Mapped[str] = mapped_column(sa.String(32), default="draft")
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    price_snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    plan: Mapped[dict[str, Any] | None]
    budget_usd: Mapped[float | None] = mapped_column(sa.Float)
    created_by: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    concluded_at: Mapped[datetime | None]

    arms: Mapped[list[Arm]] = relationship(back_populates="experiment", cascade="all, delete-orphan")


class Arm(Base):
    """Provider + model + parameters + prompt template version: prompt changes are tested like models."""

    __tablename__ = "arms"
    __table_args__ = (
        sa.UniqueConstraint("experiment_id", "name"),
        _one_of("role", get_args(ArmRole), "role"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    role: Mapped[str] = mapped_column(sa.String(16))
    provider: Mapped[str] = mapped_column(sa.String(64))
    model: Mapped[str] = mapped_column(sa.String(200))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prompt_template_version: Mapped[str | None] = mapped_column(sa.String(100))
    prompt_template: Mapped[dict[str, Any] | None]

    experiment: Mapped[Experiment] = relationship(back_populates="arms")


class CapturedRequest(Base):
    __tablename__ = "captured_requests"
    __table_args__ = (
        sa.Index("ix_captured_requests_service_route", "service", "route"),
        sa.Index("ix_captured_requests_captured_at", "captured_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[str] = mapped_column(sa.String(128), unique=True)
    schema_version: Mapped[int] = mapped_column(sa.SmallInteger, default=1)
    captured_at: Mapped[datetime]
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
    service: Mapped[str] = mapped_column(sa.String(200))
    route: Mapped[str | None] = mapped_column(sa.String(200))
    environment: Mapped[str | None] = mapped_column(sa.String(64))
    conversation_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    user_hash: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    api: Mapped[str] = mapped_column(sa.String(32))
    model: Mapped[str | None] = mapped_column(sa.String(200))
    request: Mapped[dict[str, Any]]
    response: Mapped[dict[str, Any] | None]
    redaction: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source_topic: Mapped[str | None] = mapped_column(sa.String(255))
    source_partition: Mapped[int | None]
    source_offset: Mapped[int | None] = mapped_column(sa.BigInteger)
    # shadowlab.fingerprint.body_fingerprint of `request`: repeated prompts are a cluster in the analysis.
    prompt_fingerprint: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    # shadowlab.request_shape of `request`: segment facts the analysis reads without the JSON body.
    prompt_chars: Mapped[int | None]
    user_turn: Mapped[int | None]


class WorkLease(Base):
    """One captured request with all its arms, leased by a replayer worker until `deadline`."""

    __tablename__ = "work_leases"
    __table_args__ = (
        sa.UniqueConstraint("experiment_id", "captured_request_id"),
        sa.Index("ix_work_leases_experiment_id_deadline", "experiment_id", "deadline"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    captured_request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("captured_requests.id", ondelete="CASCADE")
    )
    worker_id: Mapped[str | None] = mapped_column(sa.String(200))
    deadline: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    done: Mapped[bool] = mapped_column(default=False)


class BudgetReservation(Base):
    """Worst-case cost reserved before a request is leased; settled to the real cost afterwards."""

    __tablename__ = "budget_reservations"
    __table_args__ = (sa.UniqueConstraint("experiment_id", "captured_request_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        sa.ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    captured_request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("captured_requests.id", ondelete="CASCADE")
    )
    reserved_usd: Mapped[float] = mapped_column(sa.Float)
    settled_usd: Mapped[float | None] = mapped_column(sa.Float)
    # The judge estimate included in reserved/settled: held back for judging this request (shadowlab.budget).
    judge_usd: Mapped[float] = mapped_column(sa.Float, default=0.0, server_default="0")
    # What earlier attempts whose worker died (or was cut off mid-call) may have cost: in reserved and settled
    # for good (shadowlab.budget_recovery).
    charged_usd: Mapped[float] = mapped_column(sa.Float, default=0.0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None]


class JudgeCall(Base):
    """One judge call's money: worst case reserved before the call, settled to its real cost after.

    Pointwise calls name their replay; pairwise ones the request, the candidate arm and the order shown.
    References survive `forget`/`retention` as NULL: money spent stays counted in the experiment budget.
    """

    __tablename__ = "judge_calls"
    __table_args__ = (sa.Index("ix_judge_calls_experiment_id_scorer", "experiment_id", "scorer_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    scorer_name: Mapped[str] = mapped_column(sa.String(100))
    scorer_version: Mapped[str] = mapped_column(sa.String(64))
    model: Mapped[str] = mapped_column(sa.String(200))
    captured_request_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("captured_requests.id", ondelete="SET NULL")
    )
    replay_id: Mapped[int | None] = mapped_column(sa.ForeignKey("replays.id", ondelete="SET NULL"))
    arm_b_id: Mapped[int | None] = mapped_column(sa.ForeignKey("arms.id", ondelete="SET NULL"))
    order_shown: Mapped[str | None] = mapped_column(sa.String(2))
    reserved_usd: Mapped[float] = mapped_column(sa.Float)
    settled_usd: Mapped[float | None] = mapped_column(sa.Float)
    deadline: Mapped[datetime]  # unsettled after this: its scorer died; counts at worst case for good
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None]


class Replay(Base):
    __tablename__ = "replays"
    __table_args__ = (
        sa.UniqueConstraint("arm_id", "captured_request_id"),
        # ending in the id: an experiment's replay span is a few index look-ups (`store.scorers.replay_span`)
        sa.Index("ix_replays_experiment_id_status_id", "experiment_id", "status", "id"),
        _one_of("status", get_args(ReplayStatus), "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    arm_id: Mapped[int] = mapped_column(sa.ForeignKey("arms.id", ondelete="CASCADE"))
    captured_request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("captured_requests.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(sa.String(16))
    answer_text: Mapped[str | None] = mapped_column(sa.Text)
    tool_calls: Mapped[list[Any] | None]
    stop_reason: Mapped[str | None] = mapped_column(sa.String(64))
    ttfb_ms: Mapped[float | None]
    ttft_ms: Mapped[float | None]
    latency_ms: Mapped[float | None]
    input_tokens: Mapped[int] = mapped_column(default=0)
    cache_creation_input_tokens: Mapped[int] = mapped_column(default=0)
    cache_read_input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    reasoning_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[float | None]
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    error_detail: Mapped[str | None] = mapped_column(sa.Text)
    untranslated: Mapped[list[Any]] = mapped_column(default=list)
    attempts: Mapped[int] = mapped_column(default=1)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class AnalysisSnapshot(Base):
    """A computed analysis, stored so the dashboard reads one row instead of a million replays."""

    __tablename__ = "analysis_snapshots"
    __table_args__ = (
        sa.Index("ix_analysis_snapshots_experiment_id_computed_at", "experiment_id", "computed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    n_requests: Mapped[int] = mapped_column(default=0)
    verdict: Mapped[str | None] = mapped_column(sa.String(32))
    analysis: Mapped[dict[str, Any]]


class Decision(Base):
    """Who decided what, when, why and on which evidence. Never updated: a new decision supersedes."""

    __tablename__ = "decisions"
    __table_args__ = (
        _one_of("verdict", get_args(Verdict), "verdict"),
        sa.Index("ix_decisions_experiment_id_decided_at", "experiment_id", "decided_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    verdict: Mapped[str] = mapped_column(sa.String(32))
    winner_arm: Mapped[str | None] = mapped_column(sa.String(100))
    computed_verdict: Mapped[str | None] = mapped_column(sa.String(32))
    is_override: Mapped[bool] = mapped_column(default=False)
    decided_by: Mapped[str] = mapped_column(sa.String(200))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(sa.Text)
    evidence: Mapped[dict[str, Any]]
    analysis_snapshot_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("analysis_snapshots.id", ondelete="SET NULL")
    )
    supersedes_id: Mapped[int | None] = mapped_column(sa.ForeignKey("decisions.id"), unique=True)


class ExperimentChange(Base):
    """Who changed an experiment's budget or status, when, from what to what and why. Never updated
    (migration 0012 makes the database refuse an UPDATE or DELETE, as for decisions)."""

    __tablename__ = "experiment_changes"
    __table_args__ = (
        _one_of("field", get_args(ChangedField), "field"),
        sa.Index("ix_experiment_changes_experiment_id_changed_at", "experiment_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(sa.String(16))
    # a status name, or a budget in USD as text (repr of the float); None: no budget before
    before: Mapped[str | None] = mapped_column(sa.String(64))
    after: Mapped[str] = mapped_column(sa.String(64))
    changed_by: Mapped[str] = mapped_column(sa.String(200))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str | None] = mapped_column(sa.Text)


class ForgottenUser(Base):
    """A user `shadowlab forget` removed: ingest never stores their captures again (re-read topics, late
    messages). Keyed by sha256 of the user hash (`ingest.forgetting.user_digest`), not the hash itself."""

    __tablename__ = "forgotten_users"

    user_digest: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    forgotten_at: Mapped[datetime]


# The scoring tables and the coordination tables (limit grants, heartbeats, the budget ledger) live in their
# own modules (this one would pass 400 lines); imported here so the metadata holds every table and
# `from shadowlab.models import Score` keeps working.
from shadowlab.models_coordination import BudgetLedger as BudgetLedger  # noqa: E402
from shadowlab.models_coordination import RateLimitGrant as RateLimitGrant  # noqa: E402
from shadowlab.models_coordination import RateLimitKey as RateLimitKey  # noqa: E402
from shadowlab.models_coordination import WorkerHeartbeat as WorkerHeartbeat  # noqa: E402
from shadowlab.models_scoring import Label as Label  # noqa: E402
from shadowlab.models_scoring import Preference as Preference  # noqa: E402
from shadowlab.models_scoring import Score as Score  # noqa: E402
from shadowlab.models_scoring import ScoreTask as ScoreTask  # noqa: E402

TABLES = tuple(Base.metadata.sorted_tables)
