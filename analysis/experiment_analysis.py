"""Analyse a stored experiment: load → analyse → decide with its plan → store an `analysis_snapshots` row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from analysis.analyze import analyze_table
from analysis.load import ExperimentData, load_experiment
from analysis.plan import DecisionPlan, PlanError
from analysis.verdict_json import analysis_document
from shadowlab.models import AnalysisSnapshot


@dataclass(frozen=True)
class ExperimentReport:
    """The analyze document of one run, its verdict name (None without a plan) and the snapshot id."""

    document: dict[str, Any]
    verdict: str | None
    reasons: tuple[str, ...]
    snapshot_id: int | None
    data: ExperimentData


def plan_of(data: ExperimentData) -> DecisionPlan | None:
    """The experiment's pre-registered plan, or None when it has none."""
    if not data.plan:
        return None
    return DecisionPlan.from_dict(data.plan, where=f"experiment {data.name!r} plan")


def analyze_experiment(session: Session, name: str, *, store: bool = True) -> ExperimentReport:
    """Run the whole analysis of experiment `name`; with `store`, add an analysis snapshot row."""
    data = load_experiment(session, name)
    plan = plan_of(data)
    if plan is not None and data.control not in data.table.arms:
        raise PlanError(f"experiment {name!r}: the control arm {data.control!r} has no replays yet")
    analysis = analyze_table(
        data.table,
        control=data.control,
        alpha=plan.alpha if plan is not None else 0.05,
        adjust="holm",
        aa_arm=data.aa_arm,
    )
    document, verdict = analysis_document(analysis, plan, data.pairwise)
    snapshot_id = None
    if store:
        snapshot = AnalysisSnapshot(
            experiment_id=data.experiment_id,
            computed_at=datetime.now(UTC),
            n_requests=analysis.n_requests,
            verdict=None if verdict is None else verdict.verdict,
            analysis=document,
        )
        session.add(snapshot)
        session.flush()
        snapshot_id = snapshot.id
    return ExperimentReport(
        document,
        None if verdict is None else verdict.verdict,
        () if verdict is None else verdict.reasons,
        snapshot_id,
        data,
    )


def export_plan(data: ExperimentData) -> dict[str, Any]:
    """The plan file for `analyze --from-csv --plan` that reproduces this experiment's analysis."""
    plan: dict[str, Any] = dict(data.plan or {})
    plan["arms"] = list(data.table.arms)
    if data.aa_arm is not None:
        plan["aa_arm"] = data.aa_arm
    return plan
