"""The conditions of the decision rule, one candidate and one metric at a time.

Each condition reads an interval (fixed-horizon or always-valid, `decision_interval`) and returns a
`Check` with a sentence a product manager can read: the primary metric's superiority (`primary_check`),
a guardrail's non-inferiority within its margin (`guardrail_check`, and its p-value for families of claims,
`condition_p_value`), and no harm beyond the practical margins on every other metric (`harm_check`).
`analysis.decision` combines them into the verdict; `analysis.routing` applies them per segment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from analysis.analyze import Analysis, Comparison
from analysis.plan import DecisionPlan, Guardrail, MetricRef
from analysis.stats import adjust_p_values
from analysis.stats.distributions import t_quantile, t_two_sided_p
from analysis.stats.sequential import SequentialComparison, SequentialInterval, always_valid_p

Status = Literal["pass", "fail", "pending"]


@dataclass(frozen=True)
class Check:
    """One condition of the rule for one candidate, with the interval it was judged on."""

    name: str
    status: Status
    detail: str
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class Interval:
    """An interval on its own scale plus what the decision needs to read it."""

    estimate: float | None
    low: float | None
    high: float | None
    p_value: float | None
    null: float
    log_scale: bool
    sigma: float | None
    n: int
    reason: str | None = None


def _sequential(interval: SequentialInterval) -> Interval:
    return Interval(
        interval.estimate, interval.ci_low, interval.ci_high, interval.p_value,
        interval.null_value, interval.log_scale, interval.sigma, interval.n,
    )  # fmt: skip


def decision_interval(comparison: Comparison, seq: SequentialComparison, ref: MetricRef, *, relative: bool,
              sequential: bool) -> tuple[Interval, float | None]:  # fmt: skip
    """The interval to judge `ref` on, and the control's level (to scale relative margins)."""
    result = comparison.result
    if ref.quantile is not None:
        match = [i for i, q in enumerate(result.quantiles) if abs(q.quantile - ref.quantile) < 1e-9]
        if not match:
            return Interval(None, None, None, None, 0.0, False, None, 0), None
        q = result.quantiles[match[0]]
        if not q.supported:
            return Interval(None, None, None, None, 0.0, False, None, q.n, q.reason), q.control
        if sequential:
            return _sequential(seq.quantiles[match[0]][1]), q.control
        return Interval(q.estimate, q.ci_low, q.ci_high, q.p_value, 0.0, False, None, q.n), q.control
    use_relative = relative and result.kind == "cost" and result.relative is not None
    test = result.relative if use_relative and result.relative is not None else result.primary
    control_level = 1.0 if use_relative else (0.5 if result.kind == "preference" else result.control_mean)
    if sequential:
        chosen = seq.relative if use_relative and seq.relative is not None else seq.primary
        return _sequential(chosen), control_level
    low, high, p = test.ci_low, test.ci_high, test.p_value
    exact = (
        test.se is not None and test.estimate is not None and test.se <= 1e-12 * max(1.0, abs(test.estimate))
    )
    if low is None and exact and test.estimate is not None and test.n >= 2:
        low = high = test.estimate  # no variance at all: the estimate is exact
        p = 1.0 if test.estimate == test.null_value else 0.0
    log_scale = result.kind == "latency" and not use_relative
    return Interval(test.estimate, low, high, p, test.null_value, log_scale, None, test.n), control_level


def _excess(value: float | None, interval: Interval) -> float | None:
    """Distance from the null on the scale the boundary works in (log scale for ratios)."""
    if value is None or not math.isfinite(value):
        return None
    if interval.log_scale:
        return math.log(value) - math.log(interval.null) if value > 0 else None
    return value - interval.null


def _fmt(value: float | None, *, percent: bool) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1%}" if percent else f"{value:+.4g}"


def _bound(guard: Guardrail, interval: Interval, control_level: float | None) -> float | None:
    if interval.log_scale:
        fraction = (
            guard.margin if guard.relative else (guard.margin / control_level if control_level else None)
        )
        return None if fraction is None else math.log1p(fraction)
    if not guard.relative:
        return guard.margin
    return None if control_level is None else guard.margin * abs(control_level)


def guardrail_check(
    guard: Guardrail, interval: Interval, control_level: float | None, label: str, percent: bool
) -> tuple[Check, float | None]:
    """Check one guardrail; when pending, also return the gap the interval still has to close."""
    bound = _bound(guard, interval, control_level)
    est, low, high = (_excess(v, interval) for v in (interval.estimate, interval.low, interval.high))
    values = {"estimate": interval.estimate, "ci_low": interval.low, "ci_high": interval.high}
    name = f"guardrail:{guard.metric}"
    if bound is None or est is None or low is None or high is None:
        why = f" ({interval.reason})" if interval.reason else ""
        return Check(name, "pending", f"{label}: {guard.metric} has no interval yet{why}", **values), None

    def show(x: float) -> str:
        return _fmt(math.expm1(x) if interval.log_scale else x, percent=percent)

    worse = 1.0 if guard.direction == "lower_is_better" else -1.0
    # On the "worse" axis: best and worst ends of the interval, and the estimate.
    best_end, worst_end = (low, high) if worse > 0 else (-high, -low)
    limit = f"{'+' if worse > 0 else '-'}{show(bound).lstrip('+-')}"
    said = f"{guard.metric} {show(est)} (interval {show(low)} to {show(high)}; allowed {limit})"
    if best_end > bound:
        return Check(name, "fail", f"{label} fails the {guard.metric} guardrail: {said}", **values), None
    if worst_end <= bound:
        return Check(name, "pass", f"{label} keeps {guard.metric} within its margin: {said}", **values), None
    gap = bound - worse * est
    detail = f"{label}: {guard.metric} not yet shown to stay within its margin: {said}"
    return Check(name, "pending", detail, **values), (gap if gap > 0 else None)


def condition_p_value(
    guard: Guardrail, interval: Interval, control_level: float | None, *, alpha: float, n_star: float,
    sequential: bool,
) -> float | None:  # fmt: skip
    """The p-value of a non-inferiority claim (`guard` holds), matched to `guardrail_check`: below `alpha`
    exactly when the interval's worst end is inside the margin. Families of claims (routing's segments)
    adjust these p-values (Holm) instead of judging each interval on its own.

    Fixed horizon: the two-sided t p-value of the shifted null (the SE read back from the 1 − α interval);
    sequential: the always-valid p-value of the shifted null.
    """
    bound = _bound(guard, interval, control_level)
    est, low, high = (_excess(v, interval) for v in (interval.estimate, interval.low, interval.high))
    if bound is None or est is None or low is None or high is None or interval.n < 2:
        return None
    worse = 1.0 if guard.direction == "lower_is_better" else -1.0
    room = bound - worse * est  # how far inside the margin the estimate is
    if high - low <= 1e-12 * max(1.0, abs(est)):
        return 0.0 if room > 0 else 1.0
    if room <= 0:
        return 1.0
    if sequential:
        if interval.sigma is None or not interval.sigma > 0:
            return None
        se = interval.sigma / math.sqrt(interval.n)
        return float(always_valid_p(room / se, interval.n, n_star=n_star, alpha=alpha))
    df = float(interval.n - 1)
    se = (high - low) / (2.0 * t_quantile(1.0 - alpha / 2.0, df))
    return t_two_sided_p(room / se, df)


def primary_check(
    plan: DecisionPlan, label: str, interval: Interval, p_adjusted: float | None, percent: bool, scope: str
) -> tuple[Check, float | None]:
    est = _excess(interval.estimate, interval)
    low, high = _excess(interval.low, interval), _excess(interval.high, interval)
    values = {"estimate": interval.estimate, "ci_low": interval.low, "ci_high": interval.high,
              "p_value": p_adjusted}  # fmt: skip
    name = f"primary:{plan.primary_metric}"
    if est is None or p_adjusted is None:
        return Check(name, "pending", f"{label}: {plan.primary_metric} has no estimate yet", **values), None

    def show(x: float | None) -> str:
        return _fmt(None if x is None else (math.expm1(x) if interval.log_scale else x), percent=percent)

    better = 1.0 if plan.primary_direction == "higher_is_better" else -1.0
    said = (
        f"{plan.primary_metric} {show(est)} (interval {show(low)} to {show(high)}; "
        f"{scope} p = {p_adjusted:.3g})"
    )
    if p_adjusted < plan.alpha and better * est > 0:
        return Check(name, "pass", f"{label} improves the primary metric: {said}", **values), None
    if p_adjusted < plan.alpha:
        return Check(name, "fail", f"{label} is worse on the primary metric: {said}", **values), None
    detail = f"{label}: no proven improvement on the primary metric yet: {said}"
    return Check(name, "pending", detail, **values), (abs(est) if better * est > 0 else None)


def _harm_p(comparison: Comparison, plan: DecisionPlan) -> tuple[float | None, str]:
    """One-sided p-value that the candidate is worse than the metric's practical margin, and that margin.

    Latency is judged on the log of its ratio (margin log 1.10), cost on its relative change when there
    is one (+5 %), rates, scores and preferences on their absolute difference. Sequential plans read the
    always-valid p-value of the shifted null; fixed plans the t test's (both from the estimate's SE).
    """
    result = comparison.result
    kind = result.kind
    margin = plan.no_harm_margin(comparison.metric, kind)
    worse = 1.0 if plan.direction_of(comparison.metric, kind) == "lower_is_better" else -1.0
    test = result.relative if kind == "cost" and result.relative is not None else result.primary
    relative = kind == "latency" or test is result.relative
    sign = "+" if worse > 0 else "-"
    said = f"{sign}{margin:.0%}" if relative else f"{sign}{margin:g}"
    if test.estimate is None or test.se is None or not math.isfinite(test.se) or test.n < 2:
        return None, said
    if kind == "latency":
        if test.estimate <= 0:
            return None, said
        excess, bound = math.log(test.estimate), math.log1p(margin)
    else:
        excess, bound = test.estimate - test.null_value, margin
    harm = worse * excess - bound
    if test.se <= 1e-12 * max(1.0, abs(excess)):
        return (0.0 if harm > 0 else 1.0), said
    z = harm / test.se
    if z <= 0:
        return 1.0, said
    if plan.design == "sequential":
        p = float(always_valid_p(z, test.n, n_star=plan.n_star, alpha=plan.alpha))
    else:
        p = t_two_sided_p(z, test.df if test.df is not None else float(test.n - 1)) / 2.0
    return p, said


def harm_check(
    analysis: Analysis, plan: DecisionPlan, candidate: str, excluded: set[str], label: str
) -> Check:
    """No metric outside the plan is shown worse than its practical margin (Holm across those metrics).

    A zero margin would let ever smaller harms veto as data grow (a 2 % slower unnamed latency at n = 10⁴);
    the margins (plan.DEFAULT_NO_HARM_MARGINS, `no_harm_margins` in the plan) make it a question of size.
    """
    others = [c for c in analysis.comparisons if c.candidate == candidate and c.metric not in excluded]
    tested = {c.metric: _harm_p(c, plan) for c in others}
    adjusted = p_values_holm({metric: p for metric, (p, _) in tested.items()})
    harmed = [
        f"{metric} (worse than its margin of {tested[metric][1]}, Holm-adjusted p = {p:.3g})"
        for metric, p in adjusted.items()
        if p is not None and p < plan.alpha
    ]
    if harmed:
        return Check("no_harm", "fail", f"{label} is clearly worse on {', '.join(harmed)}")
    margins = ", ".join(f"{metric} {said}" for metric, (_, said) in tested.items())
    return Check(
        "no_harm",
        "pass",
        f"{label}: no other metric worse than its practical margin ({margins or 'none to check'}; "
        f"Holm across {len(others)})",
    )


def p_values_holm(values: Mapping[str, float | None]) -> dict[str, float | None]:
    names = list(values)
    return dict(zip(names, adjust_p_values([values[k] for k in names], "holm"), strict=True))


__all__ = [
    "Check",
    "Interval",
    "Status",
    "condition_p_value",
    "decision_interval",
    "guardrail_check",
    "harm_check",
    "p_values_holm",
    "primary_check",
]
