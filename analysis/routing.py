"""Routing recommendation: per segment of one dimension, the cheapest arm that holds up there.

Rule (docs/analysis.md): in each segment, a candidate qualifies when the plan's primary metric is
non-inferior (worse by at most `primary_margin`, default 0) and every guardrail is non-inferior within its
margin, each judged on the segment's fixed-horizon 1 − α interval; among qualifying candidates the one with
the lowest mean cost in the segment is chosen, else the control. A segment with fewer than `min_n` pairs on
the primary or any guardrail is `too_small` and stays on the control. The routing as a whole is then
treated as a virtual arm ("routed": each request answered by its segment's arm) and compared with the
control over the captured traffic mix: the saving is Σ_s share_s × mean cost difference_s with a paired
(cluster-robust) interval, and every guardrail is checked on the whole mix as the quality risk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from analysis.analyze import Comparison, compare_arms
from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.decision import Check, decision_interval, guardrail_check
from analysis.plan import DecisionPlan, Guardrail, MetricRef, resolve_metric
from analysis.segments import DEFAULT_MIN_N, Predicate, SegmentDimension, SegmentEffect
from analysis.stats.results import MetricKind
from analysis.stats.sequential import sequential_comparison

RouteStatus = Literal["routed", "control", "too_small"]
ROUTED_ARM = "routed"


class RoutingError(Exception):
    """Routing cannot be computed; the message names what was expected."""


@dataclass(frozen=True)
class RoutingRule:
    """How segments are routed: the dimension cut on, the minimum pairs, the primary's margin."""

    dimension: str = "route"
    min_n: int = DEFAULT_MIN_N
    primary_margin: float = 0.0


@dataclass(frozen=True)
class CandidateInSegment:
    arm: str
    qualifies: bool
    cost_per_request: float | None
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class SegmentRoute:
    """Where one segment goes, and why."""

    segment: str
    predicate: Predicate
    n_requests: int
    share: float
    arm: str
    status: RouteStatus
    reason: str
    candidates: tuple[CandidateInSegment, ...]


@dataclass(frozen=True)
class RoutingRecommendation:
    dimension: str
    control: str
    rule: RoutingRule
    segments: tuple[SegmentRoute, ...]
    saving: Comparison | None  # control − routed cost is −estimate; relative change in result.relative
    mix: tuple[Check, ...]  # primary and guardrails of the whole routing vs all-control
    risk: tuple[str, ...]  # the quality risk, in sentences


def _judge(comparison: Comparison, guard: Guardrail, ref: MetricRef, alpha: float, label: str) -> Check:
    seq = sequential_comparison(comparison.result, n_star=max(comparison.result.primary.n, 2), alpha=alpha)
    interval, level = decision_interval(comparison, seq, ref, relative=guard.relative, sequential=False)
    cost_relative = guard.relative and comparison.result.kind == "cost" and ref.quantile is None
    check, _ = guardrail_check(guard, interval, level, label, interval.log_scale or cost_relative)
    return check


def routing_conditions(
    plan: DecisionPlan, rule: RoutingRule, kinds: Mapping[str, MetricKind]
) -> list[tuple[Guardrail, MetricRef]]:
    """The primary as a non-inferiority condition (margin `primary_margin`), then the plan's guardrails."""
    primary = Guardrail(
        plan.primary_metric, rule.primary_margin, relative=False, direction=plan.primary_direction
    )
    return [(g, resolve_metric(g.metric, kinds)) for g in (primary, *plan.guardrails)]


def recommend_routing(
    table: ExperimentTable,
    dimension: SegmentDimension,
    effects: Sequence[SegmentEffect],
    plan: DecisionPlan,
    *,
    control: str,
    rule: RoutingRule = RoutingRule(),
) -> RoutingRecommendation:
    """Route each segment of `dimension`; then judge the whole routing against the control."""
    kinds = {m.name: m.kind for m in table.metrics}
    conditions = routing_conditions(plan, rule, kinds)
    cost_column = next((m.name for m in table.metrics if m.kind == "cost"), None)
    found = {(e.segment, e.metric, e.candidate): e for e in effects if e.dimension == dimension.name}
    candidates = sorted({e.candidate for e in effects if e.dimension == dimension.name})
    n_total = len(dimension.labels)
    routes: list[SegmentRoute] = []
    for segment in sorted(set(dimension.labels)):
        n_seg = sum(1 for label in dimension.labels if label == segment)
        judged: list[CandidateInSegment] = []
        small: list[str] = []
        for arm in candidates:
            checks: list[Check] = []
            deferred: set[str] = set()
            for guard, ref in conditions:
                effect = found.get((segment, ref.column, arm))
                if effect is None or effect.comparison is None or effect.n < rule.min_n:
                    small.append(f"{arm} {guard.metric}: {0 if effect is None else effect.n} pairs")
                    continue
                if not _quantile_supported(effect.comparison, ref):
                    deferred.add(guard.metric)
                    continue
                checks.append(_judge(effect.comparison, guard, ref, plan.alpha, f"{arm} in {segment}"))
            cost = found.get((segment, cost_column, arm)) if cost_column else None
            per_request = (
                None if cost is None or cost.comparison is None else cost.comparison.result.candidate_mean
            )
            ok = len(checks) + len(deferred) >= len(conditions) and all(c.status == "pass" for c in checks)
            judged.append(CandidateInSegment(arm, ok, per_request, tuple(checks)))
        routes.append(_route(segment, dimension, n_seg, n_total, control, judged, small, rule))
    saving, mix = _whole_routing(table, dimension, routes, plan, conditions, control, cost_column)
    failed = [c.detail for c in mix if c.status == "fail"]
    if failed:  # e.g. a tail-latency guardrail only the whole mix can estimate: route nothing
        why = "the routing as a whole fails: " + "; ".join(failed)
        routes = [
            replace(r, arm=control, status="control", reason=why) if r.status == "routed" else r
            for r in routes
        ]
        saving, mix = _whole_routing(table, dimension, routes, plan, conditions, control, cost_column)
    recommendation = RoutingRecommendation(dimension.name, control, rule, tuple(routes), saving, mix, ())
    return replace(recommendation, risk=risk_sentences(recommendation))


def _quantile_supported(comparison: Comparison, ref: MetricRef) -> bool:
    """A quantile guardrail (ttft_p95) needs many pairs; a segment with too few defers it to the mix."""
    if ref.quantile is None:
        return True
    return any(abs(q.quantile - ref.quantile) < 1e-9 and q.supported for q in comparison.result.quantiles)


def _route(
    segment: str, dimension: SegmentDimension, n_seg: int, n_total: int, control: str,
    judged: list[CandidateInSegment], small: list[str], rule: RoutingRule,
) -> SegmentRoute:  # fmt: skip
    share = n_seg / n_total if n_total else 0.0
    predicate = dimension.predicates[segment]
    qualifying = [c for c in judged if c.qualifies]
    if small and not qualifying:
        reason = (f"too small to judge: fewer than {rule.min_n} pairs ({'; '.join(small[:3])}); "
                  "stays on the control")  # fmt: skip
        return SegmentRoute(segment, predicate, n_seg, share, control, "too_small", reason, tuple(judged))
    if not qualifying:
        failed = [c.detail for j in judged for c in j.checks if c.status != "pass"]
        reason = "no candidate holds every condition here: " + "; ".join(failed[:3])
        return SegmentRoute(segment, predicate, n_seg, share, control, "control", reason, tuple(judged))
    best = min(qualifying, key=lambda c: (c.cost_per_request is None, c.cost_per_request or 0.0))
    reason = f"{best.arm} is the cheapest arm non-inferior on the primary and every guardrail here"
    return SegmentRoute(segment, predicate, n_seg, share, best.arm, "routed", reason, tuple(judged))


def routed_table(table: ExperimentTable, labels: Sequence[str], arm_of: Mapping[str, str],
                 control: str) -> ExperimentTable:  # fmt: skip
    """Two arms: the control, and the routing (each request's values from its segment's arm)."""
    columns = np.array([table.arms.index(arm_of.get(label, control)) for label in labels], dtype=np.int64)
    rows = np.arange(len(labels))
    ctrl = table.arms.index(control)
    metrics = tuple(
        MetricColumn(m.name, m.kind, np.column_stack([m.values[:, ctrl], m.values[rows, columns]]))
        for m in table.metrics
        if m.kind != "preference"  # preferences are judged against the control only per arm
    )
    return ExperimentTable(table.request_ids, (control, ROUTED_ARM), metrics, table.clusters, table.covariate)


def _whole_routing(
    table: ExperimentTable, dimension: SegmentDimension, routes: Sequence[SegmentRoute], plan: DecisionPlan,
    conditions: list[tuple[Guardrail, MetricRef]], control: str, cost_column: str | None,
) -> tuple[Comparison | None, tuple[Check, ...]]:  # fmt: skip
    mixed = routed_table(table, dimension.labels, {r.segment: r.arm for r in routes}, control)
    by_name = {m.name: m for m in mixed.metrics}

    def compare(column: str) -> Comparison:
        result = compare_arms(mixed, by_name[column], control, ROUTED_ARM, alpha=plan.alpha)
        return Comparison(column, control, ROUTED_ARM, result, None)

    saving = compare(cost_column) if cost_column in by_name else None
    checks = tuple(
        _judge(compare(ref.column), guard, ref, plan.alpha, "the routing over all traffic")
        for guard, ref in conditions
        if ref.column in by_name
    )
    return saving, checks


def risk_sentences(rec: RoutingRecommendation) -> tuple[str, ...]:
    """The quality risk stated plainly: what share moves, the mix-level checks, the weakest segment."""
    moved = [r for r in rec.segments if r.status == "routed"]
    if not moved:
        return ("no segment moves off the control, so quality is unchanged; there is no saving either",)
    share = sum(r.share for r in moved)
    names = ", ".join(f"{r.segment} → {r.arm}" for r in moved)
    out = [f"{share:.0%} of the captured traffic moves off the control ({names}); "
           f"the rest stays on {rec.control}"]  # fmt: skip
    out += [f"over all traffic: {c.detail.removeprefix('the routing over all traffic ')}" for c in rec.mix]
    small = [r.segment for r in rec.segments if r.status == "too_small"]
    if small:
        out.append(f"too small to judge, kept on the control: {', '.join(small)}")
    out.append(
        "each routed segment was judged on its own interval (no adjustment across segments); a segment's "
        "true loss can still reach the worst end of its interval"
    )
    return tuple(out)
