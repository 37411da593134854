"""The results table, read from an analysis document: what the Overview and the HTML report show.

One row per candidate and metric: the control's and the candidate's level, the change in the metric's
unit and in %, the interval the decision rule judged, the allowed change and the status, formatted with
`analysis.display`. `analysis.summary` turns the rows into the verdict's plain words. Tolerant of missing
keys: a document without a verdict gives rows without a status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from analysis import display
from analysis.display import change_text, level_text, span
from analysis.plan import (
    DEFAULT_NO_HARM_MARGINS,
    LOWER_IS_BETTER_WORDS,
    DecisionPlan,
    Guardrail,
    PlanError,
    resolve_metric,
)
from analysis.stats.results import MetricKind

Role = Literal["goal", "guardrail", "no harm"]
Tone = Literal["better", "worse", "no clear difference"]


@dataclass(frozen=True)
class ResultRow:
    """One metric of one candidate, formatted; `status` is pass / fail / pending, or "" without a plan."""

    candidate: str
    metric: str
    kind: str
    name: str
    role: Role
    status: str
    control: str
    value: str
    change: str
    change_pct: str
    interval: str
    allowed: str
    worse: bool  # the estimate moved in the bad direction

    @property
    def status_label(self) -> str:
        return display.STATUS_LABELS.get(self.status, self.status or display.MISSING)


def num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list | tuple) else []


def block(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}


def _quantile(item: Mapping[str, Any], quantile: float) -> Mapping[str, Any]:
    found = (q for q in dicts(item.get("quantiles")) if abs((num(q.get("quantile")) or 0) - quantile) < 1e-9)
    return next(found, {})


def no_events(kind: str, control: float | None, candidate: float | None) -> bool:
    """A rate that is zero in both arms: "no errors in N" says more than an interval of +0 to +0."""
    return kind == "binary" and control == 0 and candidate == 0


def no_events_text(metric: str, n: float) -> str:
    return f"no {'errors' if 'error' in metric else 'events'} in {display.count(n)} prompts"


def no_difference(kind: str, estimate: Any, low: Any) -> bool:
    """A rate difference of exactly 0 without an interval: both arms had the same outcome on every prompt."""
    return kind == "binary" and estimate == 0 and low is None


def no_difference_text(n: float) -> str:
    return f"same outcome in all {display.count(n)} prompts"


def lower_is_better(column: str, kind: str, plan: DecisionPlan | None) -> bool:
    """Which way is worse for a metric column: the plan's word, else by kind (latency, cost, error rates)."""
    if plan is not None:
        try:
            if resolve_metric(plan.primary_metric, {column: kind}).column == column:  # type: ignore[dict-item]
                return plan.primary_direction == "lower_is_better"
        except PlanError:
            pass
        return plan.direction_of(column, kind) == "lower_is_better"  # type: ignore[arg-type]
    if kind in ("latency", "cost"):
        return True
    return kind == "binary" and any(word in column.lower() for word in LOWER_IS_BETTER_WORDS)


def tone(estimate: float | None, low: float | None, high: float | None, null: float, lower: bool) -> Tone:
    """Whether the interval excludes no effect, and on which side."""
    if estimate is None or low is None or high is None or low <= null <= high:
        return "no clear difference"
    return "worse" if (low > null) == lower else "better"


def plan_of(doc: Mapping[str, Any], plan: Mapping[str, Any] | None = None) -> DecisionPlan | None:
    """The decision plan: the experiment's mapping when given, else the one the verdict block records."""
    for source in (plan, block(doc, "verdict").get("plan")):
        if isinstance(source, Mapping) and source.get("primary_metric"):
            try:
                return DecisionPlan.from_dict(source)
            except PlanError:
                continue
    return None


@dataclass(frozen=True)
class _Metric:
    """One comparison with the interval judged, its margin and direction."""

    comparison: Mapping[str, Any]
    kind: str
    quantile: float | None
    estimate: float | None
    low: float | None
    high: float | None
    relative_interval: bool  # a cost guardrail with `relative` is judged on the relative change
    lower: bool
    margin: float | None
    margin_relative: bool

    def change_text(self, value: float | None) -> str:
        return change_text(
            self.kind, value, quantile=self.quantile is not None, relative=self.relative_interval
        )

    @property
    def no_events(self) -> bool:
        c = self.comparison
        return no_events(self.kind, num(c.get("control_value")), num(c.get("candidate_value")))

    def levels(self) -> tuple[float | None, float | None]:
        c = self.comparison
        if self.quantile is not None:
            q = _quantile(c, self.quantile)
            return num(q.get("control")), num(q.get("candidate"))
        return (0.5 if self.kind == "preference" else num(c.get("control_value"))), num(
            c.get("candidate_value")
        )

    def change(self, control: float | None, value: float | None) -> tuple[str, str, float | None]:
        """The change in the metric's unit, in %, and the relative change (None when undefined)."""
        if self.no_events:
            return "no change", display.MISSING, None
        c = self.comparison
        est = self.estimate if self.quantile is not None else num(c.get("estimate"))
        if self.kind == "latency" and self.quantile is None:
            rel = None if est is None else est - 1
            diff = None if control is None or value is None else value - control
            return display.ms(diff, sign="always"), display.percent(rel, sign="always"), rel
        if self.kind == "preference":
            diff = None if est is None else 100 * (est - 0.5)
            return display.points(diff, sign="always", unit="pp"), display.MISSING, None
        rel = num(block(c, "relative").get("estimate"))
        if rel is None and est is not None and control:
            rel = est / abs(control)
        text = change_text(self.kind, est, quantile=self.quantile is not None)
        return text, display.percent(rel, sign="always"), rel

    def interval(self) -> str:
        if self.no_events:
            return no_events_text(str(self.comparison.get("metric", "")), num(self.comparison.get("n")) or 0)
        if self.low is None or self.high is None:
            return "not enough data"
        return span(self.change_text(self.low), self.change_text(self.high))

    def allowed(self, control: float | None, role: Role) -> str:
        if role == "goal":
            return "must improve"
        if self.margin is None:
            return display.MISSING
        worse = self.margin if self.lower else -self.margin
        if self.kind == "preference":
            return f"{display.percent(0.5 - self.margin)} or more"
        if self.margin_relative:
            text = display.percent(worse, sign="always")
            if self.quantile is not None and control:
                return f"{text} ({display.ms(worse * control, sign='always')})"
            return text
        if self.kind == "latency" and self.quantile is None:
            return display.ms(worse, sign="always")
        return change_text(self.kind, worse, quantile=self.quantile is not None)


class _Reader:
    """Looks up the comparisons, always-valid intervals and checks of one document."""

    def __init__(self, doc: Mapping[str, Any], plan: DecisionPlan | None) -> None:
        self.plan = plan
        self.comparisons = {
            (str(c.get("metric")), str(c.get("candidate"))): c for c in dicts(doc.get("comparisons"))
        }
        self.kinds: dict[str, MetricKind] = {
            m: c.get("kind", "mean") for (m, _), c in self.comparisons.items()
        }
        self.verdict = block(doc, "verdict")
        self.sequential = self.verdict.get("design") == "sequential"
        self.seq = {
            (str(s.get("metric")), str(s.get("candidate"))): s for s in dicts(self.verdict.get("sequential"))
        }
        self.checks = {
            str(c.get("arm")): {str(k.get("name")): k for k in dicts(c.get("checks"))}
            for c in dicts(self.verdict.get("candidates"))
        }

    def candidates(self) -> list[str]:
        names = list(dict.fromkeys(cand for _, cand in self.comparisons))
        return sorted(names, key=lambda n: n != self.verdict.get("recommended"))

    def column(self, metric: str) -> str | None:
        try:
            return resolve_metric(metric, self.kinds).column
        except PlanError:
            return None

    def row(
        self, candidate: str, metric: str, role: Role, check: Mapping[str, Any] | None
    ) -> ResultRow | None:
        try:
            ref = resolve_metric(metric, self.kinds)
        except PlanError:
            return None
        comparison = self.comparisons.get((ref.column, candidate))
        if comparison is None:
            return None
        kind = str(comparison.get("kind", "mean"))
        guard = next((g for g in self.plan.guardrails if g.metric == metric), None) if self.plan else None
        lower = (
            guard.direction == "lower_is_better" if guard else lower_is_better(ref.column, kind, self.plan)
        )
        margin, margin_relative = self._margin(ref.column, kind, role, guard)
        low, high, estimate = self._interval(comparison, ref.quantile, check)
        relative_interval = bool(
            guard
            and guard.relative
            and kind == "cost"
            and ref.quantile is None
            and comparison.get("relative")
        )
        m = _Metric(comparison, kind, ref.quantile, estimate, low, high, relative_interval, lower, margin,
                    margin_relative)  # fmt: skip
        control, value = m.levels()
        change, change_pct, rel = m.change(control, value)
        null = num(comparison.get("null_value")) or 0.0
        moved = rel if rel is not None else (None if estimate is None else estimate - null)
        control_text = (
            f"{display.percent(control)} (a tie)" if kind == "preference" else level_text(kind, control)
        )
        return ResultRow(
            candidate, metric, kind, display.metric_name(metric), role,
            str(check.get("status", "")) if check is not None else "", control_text, level_text(kind, value),
            change, change_pct, m.interval(), m.allowed(control, role),
            moved is not None and (moved > 0 if lower else moved < 0),
        )  # fmt: skip

    def _margin(
        self, column: str, kind: str, role: Role, guard: Guardrail | None
    ) -> tuple[float | None, bool]:
        if guard is not None:
            return guard.margin, guard.relative
        if role != "no harm":
            return None, False
        if self.plan is not None:
            margin = self.plan.no_harm_margin(column, kind)  # type: ignore[arg-type]
        else:
            margin = DEFAULT_NO_HARM_MARGINS.get(kind, 0.0)
        return margin, kind in ("latency", "cost")

    def _interval(
        self, comparison: Mapping[str, Any], quantile: float | None, check: Mapping[str, Any] | None
    ) -> tuple[float | None, float | None, float | None]:
        """The interval the rule judged (the check's), else always-valid for sequential plans, else fixed."""
        if check is not None and num(check.get("estimate")) is not None:
            return num(check.get("ci_low")), num(check.get("ci_high")), num(check.get("estimate"))
        source: Mapping[str, Any] = comparison
        seq = self.seq.get((str(comparison.get("metric")), str(comparison.get("candidate"))))
        if self.sequential and seq is not None:
            source = seq
        if quantile is not None:
            source = _quantile(source, quantile)
        return num(source.get("ci_low")), num(source.get("ci_high")), num(source.get("estimate"))


def result_rows(doc: Mapping[str, Any], plan: Mapping[str, Any] | None = None) -> tuple[ResultRow, ...]:
    """Per candidate (the recommended first): the goal, the guardrails, then every other metric."""
    reader = _Reader(doc, plan_of(doc, plan))
    planned: list[tuple[str, Role]] = []
    if reader.plan is not None:
        planned = [
            (reader.plan.primary_metric, "goal"),
            *((g.metric, "guardrail") for g in reader.plan.guardrails),
        ]
    named = {reader.column(metric) for metric, _ in planned}
    rows: list[ResultRow] = []
    for candidate in reader.candidates():
        checks = reader.checks.get(candidate, {})
        for metric, role in planned:
            check = checks.get(f"{'primary' if role == 'goal' else 'guardrail'}:{metric}")
            rows.append(reader.row(candidate, metric, role, check))  # type: ignore[arg-type]
        harm = checks.get("no_harm")
        for metric, cand in reader.comparisons:
            if cand != candidate or metric in named:
                continue
            status = None
            if harm is not None:
                failed = harm.get("status") == "fail" and f"{metric} (worse than" in str(harm.get("detail"))
                status = {"status": "fail" if failed else "pass"}
            rows.append(reader.row(candidate, metric, "no harm", status))  # type: ignore[arg-type]
    return tuple(r for r in rows if r is not None)


def check_rows(
    doc: Mapping[str, Any],
    plan: Mapping[str, Any] | None,
    checks: Sequence[Mapping[str, Any]],
    *,
    label: str,
    n: int,
) -> tuple[ResultRow, ...]:
    """Rows for checks judged outside the comparisons (the routing over all traffic): each check's own
    estimate and interval, formatted by its metric's kind, named `label` as the candidate."""
    reader = _Reader(doc, plan_of(doc, plan))
    rows = []
    for check in checks:
        prefix, _, metric = str(check.get("name", "")).partition(":")
        column = reader.column(metric)
        if prefix not in ("primary", "guardrail") or column is None:
            continue
        kind = reader.kinds[column]
        quantile = resolve_metric(metric, reader.kinds).quantile
        est = num(check.get("estimate"))
        guard = next((g for g in reader.plan.guardrails if g.metric == metric), None) if reader.plan else None
        relative = guard is not None and guard.relative and kind == "cost" and quantile is None
        exact_zero = kind == "binary" and est == 0 and check.get("ci_low") == check.get("ci_high") == 0
        level = 0.0 if exact_zero else None  # no events in either arm: "no errors in N"
        reader.comparisons[(column, label)] = {
            "metric": column, "kind": kind, "candidate": label, "n": n, "estimate": None if relative else est,
            "control_value": level, "candidate_value": level,
            "null_value": 1.0 if kind == "latency" and quantile is None else 0.0,
            "relative": {"estimate": est} if relative else None,
            "quantiles": [{"quantile": quantile}] if quantile is not None else [],
        }  # fmt: skip
        row = reader.row(label, metric, "guardrail", check)
        if row is not None:
            rows.append(row)
    return tuple(rows)
