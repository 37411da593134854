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

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import numpy as np
import numpy.typing as npt

from analysis.analyze import Comparison, compare_arms
from analysis.conditions import Check, condition_p_value, decision_interval, guardrail_check
from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.plan import DecisionPlan, Guardrail, MetricRef, resolve_metric
from analysis.segments import (
    DEFAULT_MIN_N,
    Predicate,
    SegmentDimension,
    SegmentEffect,
    segment_effects,
    subset_rows,
)
from analysis.stats import adjust_p_values
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
    p_value: float | None = None  # of the claim "every condition holds here" (the largest condition's p)
    p_adjusted: float | None = None  # Holm across every segment × candidate claim


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
    # "cross-fitted" (chosen on one half, measured on the other) or "in-sample" (chosen and measured on the
    # same requests: optimistic, used only when a half is too small to choose a routing on its own)
    saving_method: str = "in-sample"


def _judge(
    comparison: Comparison, guard: Guardrail, ref: MetricRef, plan: DecisionPlan, label: str
) -> tuple[Check, float | None]:
    """One condition in one segment, on the plan's kind of interval (always-valid when it is sequential),
    with the p-value of its non-inferiority claim for the adjustment across segments."""
    sequential = plan.design == "sequential"
    seq = sequential_comparison(comparison.result, n_star=plan.n_star, alpha=plan.alpha)
    interval, level = decision_interval(comparison, seq, ref, relative=guard.relative, sequential=sequential)
    cost_relative = guard.relative and comparison.result.kind == "cost" and ref.quantile is None
    check, _ = guardrail_check(guard, interval, level, label, interval.log_scale or cost_relative)
    p = condition_p_value(guard, interval, level, alpha=plan.alpha, n_star=plan.n_star, sequential=sequential)
    return check, p


def routing_conditions(
    plan: DecisionPlan, rule: RoutingRule, kinds: Mapping[str, MetricKind]
) -> list[tuple[Guardrail, MetricRef]]:
    """The primary as a non-inferiority condition (margin `primary_margin`), then the plan's guardrails."""
    primary = Guardrail(
        plan.primary_metric, rule.primary_margin, relative=False, direction=plan.primary_direction
    )
    return [(g, resolve_metric(g.metric, kinds)) for g in (primary, *plan.guardrails)]


def quantile_columns(
    plan: DecisionPlan, rule: RoutingRule, kinds: Mapping[str, MetricKind]
) -> frozenset[str]:
    """The latency columns a routing condition reads a quantile of (`ttft_p95`): the segment effects must
    carry their quantile differences (`segment_effects(quantile_metrics=...)`)."""
    conditions = routing_conditions(plan, rule, kinds)
    return frozenset(ref.column for _, ref in conditions if ref.quantile is not None)


def recommend_routing(
    table: ExperimentTable,
    dimension: SegmentDimension,
    effects: Sequence[SegmentEffect],
    plan: DecisionPlan,
    *,
    control: str,
    rule: RoutingRule = RoutingRule(),
    cross_fit: bool = True,
    aa_arm: str | None = None,
    failure_latency_ms: float | None = None,
) -> RoutingRecommendation:
    """Route each segment of `dimension`; then judge the whole routing against the control.

    With `cross_fit`, the saving is measured on requests the routing was not chosen on (two folds); a failed
    replay counts at `failure_latency_ms` (the replay timeout) in latency ratios."""
    kinds = {m.name: m.kind for m in table.metrics}
    conditions = routing_conditions(plan, rule, kinds)
    cost_column = next((m.name for m in table.metrics if m.kind == "cost"), None)
    routes = choose_routes(dimension, effects, plan, control=control, kinds=kinds, rule=rule)
    whole = partial(_whole_routing, table, dimension, plan=plan, conditions=conditions, control=control,
                    cost_column=cost_column, failure_latency_ms=failure_latency_ms)  # fmt: skip
    saving, mix = whole(routes)
    failed = [c.detail for c in mix if c.status == "fail"]
    if failed:  # e.g. a tail-latency guardrail only the whole mix can estimate: route nothing
        why = "the routing as a whole fails: " + "; ".join(failed)
        routes = tuple(replace(r, arm=control, status="control", reason=why) if r.status == "routed" else r
                       for r in routes)  # fmt: skip
        saving, mix = whole(routes)
    method = "in-sample"
    if cross_fit and cost_column is not None and any(r.status == "routed" for r in routes):
        fitted = cross_fitted_saving(table, dimension, plan, control=control, rule=rule, aa_arm=aa_arm,
                                     failure_latency_ms=failure_latency_ms)  # fmt: skip
        if fitted is not None:
            saving, method = fitted, "cross-fitted"
    recommendation = RoutingRecommendation(dimension.name, control, rule, routes, saving, mix, (), method)
    return replace(recommendation, risk=risk_sentences(recommendation))


def choose_routes(
    dimension: SegmentDimension, effects: Sequence[SegmentEffect], plan: DecisionPlan, *, control: str,
    kinds: Mapping[str, MetricKind], rule: RoutingRule = RoutingRule(),
) -> tuple[SegmentRoute, ...]:  # fmt: skip
    """Each segment's arm. A candidate qualifies in a segment when its claim "every condition holds here"
    survives Holm across all segment × candidate claims: moving traffic is a family of non-inferiority
    claims, and without the adjustment one of many routes at the margin moves by chance. `kinds`: the
    table's metric kinds (a segment too small to test has no comparison to read its kinds from)."""
    conditions = routing_conditions(plan, rule, kinds)
    cost_column = next((m for m, k in kinds.items() if k == "cost"), None)
    found = {(e.segment, e.metric, e.candidate): e for e in effects if e.dimension == dimension.name}
    candidates = sorted({e.candidate for e in effects if e.dimension == dimension.name})
    n_total = len(dimension.codes)
    present = dimension.present()
    judged_by_segment: dict[str, list[CandidateInSegment]] = {}
    small_by_segment: dict[str, list[str]] = {}
    for _, segment, _ in present:
        judged = judged_by_segment.setdefault(segment, [])
        small = small_by_segment.setdefault(segment, [])
        for arm in candidates:
            checks: list[Check] = []
            p_values: list[float | None] = []
            deferred: set[str] = set()
            for guard, ref in conditions:
                effect = found.get((segment, ref.column, arm))
                if effect is None or effect.comparison is None or effect.n < rule.min_n:
                    small.append(f"{arm} {guard.metric}: {0 if effect is None else effect.n} pairs")
                    continue
                if ref.quantile is not None and not effect.comparison.result.quantiles:
                    raise RoutingError(
                        f"segment effects of {ref.column!r} have no quantiles: to route on {guard.metric}, "
                        f"compute them with segment_effects(quantile_metrics="
                        f"{{{dimension.name!r}: [{ref.column!r}]}})"
                    )
                if not _quantile_supported(effect.comparison, ref):
                    deferred.add(guard.metric)
                    continue
                check, p = _judge(effect.comparison, guard, ref, plan, f"{arm} in {segment}")
                checks.append(check)
                p_values.append(p)
            cost = found.get((segment, cost_column, arm)) if cost_column else None
            per_request = (
                None if cost is None or cost.comparison is None else cost.comparison.result.candidate_mean
            )
            complete = len(checks) + len(deferred) >= len(conditions) and bool(checks)
            known = [p for p in p_values if p is not None]
            claim = max(known) if complete and len(known) == len(p_values) else None
            judged.append(CandidateInSegment(arm, False, per_request, tuple(checks), claim))
    claims = [(segment, i) for segment, js in judged_by_segment.items() for i, j in enumerate(js)]
    adjusted = adjust_p_values([judged_by_segment[s][i].p_value for s, i in claims], "holm")
    for (segment, i), p in zip(claims, adjusted, strict=True):
        candidate = judged_by_segment[segment][i]
        qualifies = p is not None and p < plan.alpha and all(c.status == "pass" for c in candidate.checks)
        judged_by_segment[segment][i] = replace(candidate, qualifies=qualifies, p_adjusted=p)
    n_claims = sum(1 for s, i in claims if judged_by_segment[s][i].p_value is not None)
    return tuple(
        _route(segment, dimension, size, n_total, control, judged_by_segment[segment],
               small_by_segment[segment], rule, n_claims)
        for _, segment, size in present
    )  # fmt: skip


def cross_fitted_saving(
    table: ExperimentTable,
    dimension: SegmentDimension,
    plan: DecisionPlan,
    *,
    control: str,
    rule: RoutingRule = RoutingRule(),
    aa_arm: str | None = None,
    failure_latency_ms: float | None = None,
) -> Comparison | None:
    """The routing rule's saving measured on requests it was not chosen on: the requests are split in two
    folds (by prompt fingerprint or conversation when the table has clusters, so a repeated prompt stays in
    one fold), the routing is chosen on each fold and its saving measured on the other, and the per-request
    savings of both folds are pooled into one paired interval. Choosing and measuring on the same requests
    favours routes whose cost or quality looked lucky; this does not.

    None when there is no cost metric, or when a half moves no traffic on its own (too little data to
    choose a routing from half the requests: the estimate would say nothing about the routing chosen).
    """
    cost_column = next((m.name for m in table.metrics if m.kind == "cost"), None)
    if cost_column is None:
        return None
    kinds = {m.name: m.kind for m in table.metrics}
    fold = _folds(table)
    # the arm column of each (fold measured on, segment): the routing chosen on the other fold
    arm_columns = np.full((2, len(dimension.segments)), table.arms.index(control), dtype=np.int64)
    for k in (0, 1):
        train = fold != k
        if not train.any() or train.all():
            return None
        sub_dimension = dimension.subset(train)
        sub_effects = segment_effects(
            subset_rows(table, train), [sub_dimension], control=control, alpha=plan.alpha, aa_arm=aa_arm,
            min_n=rule.min_n, quantile_metrics={dimension.name: quantile_columns(plan, rule, kinds)},
            failure_latency_ms=failure_latency_ms,
        )  # fmt: skip
        chosen = choose_routes(sub_dimension, sub_effects, plan, control=control, kinds=kinds, rule=rule)
        if not any(route.status == "routed" for route in chosen):
            return None
        index = {segment: i for i, segment in enumerate(dimension.segments)}
        for route in chosen:
            arm_columns[1 - k, index[route.segment]] = table.arms.index(route.arm)
    mixed = routed_table(table, arm_columns[fold, dimension.codes], control)
    column = next(m for m in mixed.metrics if m.name == cost_column)
    result = compare_arms(mixed, column, control, ROUTED_ARM, alpha=plan.alpha)
    note = "cross-fitted: the routing chosen on one half of the requests, its saving measured on the other"
    return Comparison(
        cost_column, control, ROUTED_ARM, replace(result, primary=replace(
            result.primary, notes=(*result.primary.notes, note))), None
    )  # fmt: skip


def _folds(table: ExperimentTable) -> npt.NDArray[np.int64]:
    """0/1 per request, stable across runs: by the cluster (the fingerprint column of a two-way table),
    else by request id."""
    if table.clusters is not None:
        keys = table.clusters if table.clusters.ndim == 1 else table.clusters[:, -1]
        clusters, inverse = np.unique(keys, return_inverse=True)
        halves = np.array([_half(f"c{int(k)}") for k in clusters], dtype=np.int64)
        return halves[inverse.reshape(-1)]
    return np.fromiter(map(_half, table.request_ids), dtype=np.int64, count=len(table.request_ids))


def _half(key: str) -> int:
    return hashlib.blake2b(key.encode(), digest_size=1).digest()[0] & 1


def _quantile_supported(comparison: Comparison, ref: MetricRef) -> bool:
    """A quantile guardrail (ttft_p95) needs many pairs; a segment with too few defers it to the mix."""
    if ref.quantile is None:
        return True
    return any(abs(q.quantile - ref.quantile) < 1e-9 and q.supported for q in comparison.result.quantiles)


def _route(
    segment: str, dimension: SegmentDimension, n_seg: int, n_total: int, control: str,
    judged: list[CandidateInSegment], small: list[str], rule: RoutingRule, n_claims: int,
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
        if failed:
            reason = "no candidate holds every condition here: " + "; ".join(failed[:3])
        else:
            shown = ", ".join(f"{j.arm} p = {j.p_adjusted:.3g}" for j in judged if j.p_adjusted is not None)
            reason = (
                "every condition holds on this segment's own interval, but not after adjusting across "
                f"the {n_claims} segment × candidate claims (Holm: {shown}); stays on the control"
            )
        return SegmentRoute(segment, predicate, n_seg, share, control, "control", reason, tuple(judged))
    best = min(qualifying, key=lambda c: (c.cost_per_request is None, c.cost_per_request or 0.0))
    reason = (
        f"{best.arm} is the cheapest arm non-inferior on the primary and every guardrail here "
        f"(Holm-adjusted p = {best.p_adjusted:.3g} across {n_claims} segment × candidate claims)"
    )
    return SegmentRoute(segment, predicate, n_seg, share, best.arm, "routed", reason, tuple(judged))


def routed_table(table: ExperimentTable, columns: npt.NDArray[np.int64], control: str) -> ExperimentTable:
    """Two arms: the control, and the routing (each request's values from the arm column `columns` gives
    it: its segment's arm)."""
    rows = np.arange(len(columns))
    ctrl = table.arms.index(control)
    metrics = tuple(
        MetricColumn(m.name, m.kind, np.column_stack([m.values[:, ctrl], m.values[rows, columns]]))
        for m in table.metrics
        if m.kind != "preference"  # preferences are judged against the control only per arm
    )
    return ExperimentTable(table.request_ids, (control, ROUTED_ARM), metrics, table.clusters, table.covariate)


def _whole_routing(
    table: ExperimentTable, dimension: SegmentDimension, routes: Sequence[SegmentRoute], *,
    plan: DecisionPlan, conditions: list[tuple[Guardrail, MetricRef]], control: str, cost_column: str | None,
    failure_latency_ms: float | None,
) -> tuple[Comparison | None, tuple[Check, ...]]:  # fmt: skip
    arm_of = {r.segment: table.arms.index(r.arm) for r in routes}
    by_segment = np.array(
        [arm_of.get(segment, table.arms.index(control)) for segment in dimension.segments], dtype=np.int64
    )
    mixed = routed_table(table, by_segment[dimension.codes], control)
    by_name = {m.name: m for m in mixed.metrics}

    def compare(column: str) -> Comparison:
        result = compare_arms(mixed, by_name[column], control, ROUTED_ARM, alpha=plan.alpha,
                              failure_latency_ms=failure_latency_ms)  # fmt: skip
        return Comparison(column, control, ROUTED_ARM, result, None)

    saving = compare(cost_column) if cost_column in by_name else None
    checks = tuple(
        _judge(compare(ref.column), guard, ref, plan, "the routing over all traffic")[0]
        for guard, ref in conditions
        if ref.column in by_name
    )
    return saving, checks


def risk_sentences(rec: RoutingRecommendation) -> tuple[str, ...]:
    """The quality risk stated plainly: what share moves, the mix-level checks, the weakest segment."""
    moved = [r for r in rec.segments if r.status == "routed"]
    if rec.segments and all(r.status == "too_small" for r in rec.segments):
        return (f"no routing (too few prompts per segment): every segment has fewer than {rec.rule.min_n} "
                f"pairs to judge a candidate on, so all traffic stays on {rec.control}",)  # fmt: skip
    if not moved:
        return (f"no segment moves off the control: all traffic stays on {rec.control}, so users see no "
                "change and there is no saving either",)  # fmt: skip
    share = sum(r.share for r in moved)
    names = ", ".join(f"{r.segment} → {r.arm}" for r in moved)
    out = [f"{share:.0%} of the captured traffic moves off the control ({names}); "
           f"the rest stays on {rec.control}"]  # fmt: skip
    out += [f"over all traffic: {c.detail.removeprefix('the routing over all traffic ')}" for c in rec.mix]
    small = [r.segment for r in rec.segments if r.status == "too_small"]
    if small:
        out.append(f"too small to judge, kept on the control: {', '.join(small)}")
    out.append(
        "a segment moves only when its claim survives Holm's adjustment across every segment × candidate "
        "(the chance that any route at its margin moves is at most α)"
    )
    out.append(
        "the saving is cross-fitted: the routing chosen on one half of the requests, its saving measured on "
        "the other, both ways"
        if rec.saving_method == "cross-fitted"
        else "the saving is measured on the same requests that chose the routing (half of them were too few "
        "to choose a routing on their own), so it may be optimistic"
    )
    return tuple(out)
