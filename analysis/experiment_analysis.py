"""Analyse a stored experiment: load → analyse → decide with its plan → store an `analysis_snapshots` row."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from analysis.analyze import Analysis, analyze_table
from analysis.decision import overall_verdict
from analysis.document import analysis_document, routing_json, verdict_json
from analysis.load import ExperimentData, load_experiment
from analysis.plan import DecisionPlan, PlanError
from analysis.ranking import rank_arms
from analysis.routing import RoutingRecommendation, RoutingRule, quantile_columns, recommend_routing
from analysis.segments import SegmentEffect, SegmentEffectsRun, segment_dimensions, segment_json
from analysis.stats.results import HealthReport
from shadowlab.store import snapshots


@dataclass(frozen=True)
class ExperimentReport:
    """The analyze document of one run, its verdict name (None without a plan) and the snapshot id."""

    document: dict[str, Any]
    verdict: str | None
    reasons: tuple[str, ...]
    snapshot_id: int | None
    data: ExperimentData
    segments: tuple[SegmentEffect, ...] = ()
    routing: RoutingRecommendation | None = None

    @property
    def snapshot_document(self) -> dict[str, Any]:
        """The stored document: the analyze document plus `segments` and `routing`."""
        return {
            **self.document,
            "segments": [segment_json(e) for e in self.segments],
            "routing": None if self.routing is None else routing_json(self.routing),
        }


def plan_of(data: ExperimentData) -> DecisionPlan | None:
    """The experiment's pre-registered plan, or None when it has none."""
    if not data.plan:
        return None
    return DecisionPlan.from_dict(data.plan, where=f"experiment {data.name!r} plan")


FORK_MIN_REQUESTS = 20_000  # below this the segments take less than forking saves (~0.1 s at 20k)


def start_segments(
    data: ExperimentData, alpha: float, plan: DecisionPlan | None, rule: RoutingRule, *, fork: bool = True
) -> SegmentEffectsRun | None:
    """Effects per segment (every dimension), started: on a large experiment some dimensions are computed by
    a forked child while the caller analyses the whole table (`SegmentEffectsRun`). None without facts."""
    if not len(data.facts):
        return None
    kinds = {m.name: m.kind for m in data.table.metrics}
    return SegmentEffectsRun(
        data.table, segment_dimensions(data.facts), control=data.control, alpha=alpha, aa_arm=data.aa_arm,
        min_n=rule.min_n,
        quantile_metrics=None if plan is None else {rule.dimension: quantile_columns(plan, rule, kinds)},
        failure_latency_ms=data.failure_latency_ms,
        fork=fork and len(data.table.request_ids) >= FORK_MIN_REQUESTS,
    )  # fmt: skip


def segments_and_routing(
    data: ExperimentData, run: SegmentEffectsRun | None, plan: DecisionPlan | None, rule: RoutingRule
) -> tuple[tuple[SegmentEffect, ...], RoutingRecommendation | None]:
    """Effects per segment (every dimension, from `start_segments`) and, with a plan, the routing over
    `rule.dimension`."""
    if run is None:
        return (), None
    effects = run.effects()
    chosen = [d for d in run.dimensions if d.name == rule.dimension]
    if plan is None or not chosen:
        return effects, None
    return effects, recommend_routing(
        data.table, chosen[0], effects, plan, control=data.control, rule=rule, aa_arm=data.aa_arm,
        failure_latency_ms=data.failure_latency_ms,
    )  # fmt: skip


def analyze_experiment(
    session: Session, name: str, *, store: bool = True, rule: RoutingRule | None = None
) -> ExperimentReport:
    """Run the whole analysis of experiment `name`; with `store`, add an analysis snapshot row."""
    data = load_experiment(session, name, check=True)
    plan = plan_of(data)
    report = _analysed(data, plan, rule or RoutingRule()) if data.has_replays else no_data_report(data, plan)
    if not store:
        return report
    snapshot = snapshots.add(
        data.experiment_id,
        n_requests=report.document["n_requests"],
        verdict=report.verdict,
        analysis=report.snapshot_document,
        session=session,
    )
    return replace(report, snapshot_id=snapshot.id)


def _analysed(data: ExperimentData, plan: DecisionPlan | None, rule: RoutingRule) -> ExperimentReport:
    if plan is not None and data.control not in data.table.arms:
        raise PlanError(f"experiment {data.name!r}: the control arm {data.control!r} has no replays yet")
    alpha = plan.alpha if plan is not None else 0.05
    with start_segments(data, alpha, plan, rule) or nullcontext() as run:
        analysis = analyze_table(
            data.table,
            control=data.control,
            alpha=alpha,
            adjust="holm",
            aa_arm=data.aa_arm,
            failure_latency_ms=data.failure_latency_ms,
            judge_orders=data.judge_orders,
        )
        ranking = rank_arms(analysis.arms, analysis.control, data.pairwise)
        document, verdict = analysis_document(analysis, plan, ranking, data.table)
        segments, routing = segments_and_routing(data, run, plan, rule)
    return ExperimentReport(
        document,
        None if verdict is None else verdict.verdict,
        () if verdict is None else verdict.reasons,
        None,
        data,
        segments,
        routing,
    )


def no_replays_message(name: str, what: str = "analyse") -> str:
    """What to say about an experiment without replays, and what to run."""
    return f"no replays yet: nothing to {what} until `shadowlab replay {name}` has run"


def no_data_report(data: ExperimentData, plan: DecisionPlan | None) -> ExperimentReport:
    """An experiment without replays (just started, or emptied by retention): "no data yet", not an error.

    The document has no comparisons and a `note`; under a plan the verdict is `keep_running` (the plan's
    minimum sample is still ahead), so a gate blocks until there is evidence either way.
    """
    note = no_replays_message(data.name)
    empty = Analysis(0, data.table.arms, data.control, plan.alpha if plan is not None else 0.05, "holm", (),
                     HealthReport(()))  # fmt: skip
    document, _ = analysis_document(empty, None, None)
    document["note"] = note
    if plan is None:
        return ExperimentReport(document, None, (), None, data)
    verdict = overall_verdict(empty, plan, (), ())
    verdict = replace(verdict, reasons=(note, *verdict.reasons))
    document["verdict"] = verdict_json(verdict, plan, None)
    return ExperimentReport(document, verdict.verdict, verdict.reasons, None, data)


def export_plan(data: ExperimentData) -> dict[str, Any]:
    """The plan file for `analyze --from-csv --plan` that reproduces this experiment's analysis."""
    plan: dict[str, Any] = dict(data.plan or {})
    plan["arms"] = list(data.table.arms)
    if data.aa_arm is not None:
        plan["aa_arm"] = data.aa_arm
    if data.failure_latency_ms is not None:
        plan["failure_latency_ms"] = data.failure_latency_ms
    if data.judge_orders is not None:
        plan["judge_orders"] = list(data.judge_orders)
    return plan
