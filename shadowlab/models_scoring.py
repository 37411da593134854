"""The scoring tables: scores, preferences, blind labels, and the score tasks that lease judging work.

A score task is one unit of judging: (replay, scorer, version) for a pointwise scorer, or (request,
candidate arm, order shown, scorer, version) for a pairwise judge. Like a replay lease (`work_leases`), a
task is held by one `shadowlab score` process until its `deadline` (heartbeats push it), so any number of
processes judge each item once; a killed process's tasks are taken over once their deadline has passed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shadowlab.models import Base, BigId, OrderShown, PreferenceResult, _one_of, utcnow

__all__ = ["Label", "Preference", "Score", "ScoreTask"]


class Score(Base):
    __tablename__ = "scores"
    __table_args__ = (sa.UniqueConstraint("replay_id", "scorer_name", "scorer_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    replay_id: Mapped[int] = mapped_column(sa.ForeignKey("replays.id", ondelete="CASCADE"))
    scorer_name: Mapped[str] = mapped_column(sa.String(100))
    scorer_version: Mapped[str] = mapped_column(sa.String(64))
    value: Mapped[float | None]
    rationale: Mapped[str | None] = mapped_column(sa.Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # new_since


class Preference(Base):
    """A pairwise comparison of two arms' answers to one request, in the order it was shown."""

    __tablename__ = "preferences"
    __table_args__ = (
        sa.UniqueConstraint(
            "captured_request_id",
            "arm_a_id",
            "arm_b_id",
            "scorer_name",
            "scorer_version",
            "order_shown",
            name="uq_preferences_request_arms_scorer_order",
        ),
        sa.Index("ix_preferences_experiment_id_scorer", "experiment_id", "scorer_name"),
        _one_of("result", get_args(PreferenceResult), "result"),
        _one_of("order_shown", get_args(OrderShown), "order_shown"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    captured_request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("captured_requests.id", ondelete="CASCADE")
    )
    arm_a_id: Mapped[int] = mapped_column(sa.ForeignKey("arms.id", ondelete="CASCADE"))
    arm_b_id: Mapped[int] = mapped_column(sa.ForeignKey("arms.id", ondelete="CASCADE"))
    scorer_name: Mapped[str] = mapped_column(sa.String(100))
    scorer_version: Mapped[str] = mapped_column(sa.String(64))
    order_shown: Mapped[str] = mapped_column(sa.String(2))
    result: Mapped[str] = mapped_column(sa.String(4))
    rationale: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Label(Base):
    """A blind human label: the labeller saw the two answers in `order_shown`, arms hidden."""

    __tablename__ = "labels"
    __table_args__ = (
        sa.UniqueConstraint("captured_request_id", "arm_a_id", "arm_b_id", "labeler"),
        sa.Index("ix_labels_experiment_id_labeler", "experiment_id", "labeler"),
        _one_of("result", get_args(PreferenceResult), "result"),
        _one_of("order_shown", get_args(OrderShown), "order_shown"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    captured_request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("captured_requests.id", ondelete="CASCADE")
    )
    arm_a_id: Mapped[int] = mapped_column(sa.ForeignKey("arms.id", ondelete="CASCADE"))
    arm_b_id: Mapped[int] = mapped_column(sa.ForeignKey("arms.id", ondelete="CASCADE"))
    labeler: Mapped[str] = mapped_column(sa.String(200))
    order_shown: Mapped[str] = mapped_column(sa.String(2))
    result: Mapped[str] = mapped_column(sa.String(4))
    comment: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScoreTask(Base):
    """One item to judge, leased by a `shadowlab score` process until `deadline` (scoring/tasks.py).

    `arm_id` is the replay's arm (pointwise) or the candidate (pairwise); `order_shown` is "" for pointwise,
    so the unique key has no NULLs. A task is `done` once its score or preference row is written."""

    __tablename__ = "score_tasks"
    __table_args__ = (
        sa.UniqueConstraint(
            "experiment_id",
            "scorer_name",
            "scorer_version",
            "captured_request_id",
            "arm_id",
            "order_shown",
            name="uq_score_tasks_item",
        ),
        sa.Index("ix_score_tasks_open", "experiment_id", "scorer_name", "scorer_version", "done", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    scorer_name: Mapped[str] = mapped_column(sa.String(100))
    scorer_version: Mapped[str] = mapped_column(sa.String(64))
    captured_request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("captured_requests.id", ondelete="CASCADE"), index=True
    )
    arm_id: Mapped[int] = mapped_column(sa.ForeignKey("arms.id", ondelete="CASCADE"))
    order_shown: Mapped[str] = mapped_column(sa.String(2), default="")
    replay_id: Mapped[int | None] = mapped_column(sa.ForeignKey("replays.id", ondelete="CASCADE"))
    worker_id: Mapped[str | None] = mapped_column(sa.String(200))
    deadline: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    done: Mapped[bool] = mapped_column(default=False)
