"""Read an `analysis_snapshots.analysis` document (DESIGN §7) into typed views, tolerant of missing keys.

The dashboard only displays what the analysis computed. Unknown keys are ignored, missing optional keys
become None, and a document that cannot be read at all (or that records a failed run) raises
`SnapshotError`, which pages show as a message instead of a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analysis.display import VERDICT_LABELS as VERDICT_LABELS
from analysis.display import verdict_label


class SnapshotError(Exception):
    """The analysis snapshot records a failure or does not follow the analysis JSON contract."""


@dataclass(frozen=True)
class QuantileView:
    quantile: float
    supported: bool
    control: float | None
    candidate: float | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    reason: str | None


@dataclass(frozen=True)
class ComparisonView:
    metric: str
    kind: str
    control: str
    candidate: str
    n: int
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None
    test: str
    null_value: float | None
    mde: float | None
    control_value: float | None
    candidate_value: float | None
    quantiles: tuple[QuantileView, ...]
    # The test the MDE is for ('always-valid', 'fixed-horizon', 'fixed-horizon (no plan)'); None in
    # snapshots written before the MDE followed the plan, whose `mde` is the fixed-horizon two-sided one.
    mde_test: str | None = None
    mde_planned: float | None = None
    mde_planned_n: int | None = None


@dataclass(frozen=True)
class HealthView:
    name: str
    passed: bool | None
    p_value: float | None
    detail: str


@dataclass(frozen=True)
class CheckView:
    """One condition of the decision rule for one candidate (primary, guardrail, harm scan, health)."""

    candidate: str
    name: str
    status: str
    detail: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class VerdictView:
    verdict: str
    reasons: tuple[str, ...]
    recommended: str | None = None
    more_prompts: int | None = None
    design: str | None = None
    checks: tuple[CheckView, ...] = ()

    @property
    def label(self) -> str:
        return verdict_label(self.verdict)


@dataclass(frozen=True)
class SnapshotView:
    computed_at: datetime
    n_requests: int
    arms: tuple[str, ...]
    control: str | None
    alpha: float | None
    comparisons: tuple[ComparisonView, ...]
    health_passed: bool | None
    health: tuple[HealthView, ...]
    verdict: VerdictView | None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SnapshotError(f"{where}: expected an object, found {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise SnapshotError(f"{where}: expected a list, found {type(value).__name__}")
    return value


def _quantile(raw: Any, where: str) -> QuantileView:
    q = _mapping(raw, where)
    return QuantileView(
        quantile=_num(q.get("quantile")) or 0.0,
        supported=bool(q.get("supported", False)),
        control=_num(q.get("control")),
        candidate=_num(q.get("candidate")),
        estimate=_num(q.get("estimate")),
        ci_low=_num(q.get("ci_low")),
        ci_high=_num(q.get("ci_high")),
        p_value=_num(q.get("p_value")),
        reason=None if q.get("reason") is None else str(q.get("reason")),
    )


def _comparison(raw: Any, where: str) -> ComparisonView:
    c = _mapping(raw, where)
    if "metric" not in c or "candidate" not in c:
        raise SnapshotError(f"{where}: expected keys 'metric' and 'candidate', found {sorted(c)}")
    return ComparisonView(
        metric=str(c["metric"]),
        kind=str(c.get("kind", "mean")),
        control=str(c.get("control", "")),
        candidate=str(c["candidate"]),
        n=int(_num(c.get("n")) or 0),
        estimate=_num(c.get("estimate")),
        ci_low=_num(c.get("ci_low")),
        ci_high=_num(c.get("ci_high")),
        p_value=_num(c.get("p_value")),
        p_adjusted=_num(c.get("p_adjusted")),
        test=str(c.get("test", "")),
        null_value=_num(c.get("null_value")),
        mde=_num(c.get("mde")),
        control_value=_num(c.get("control_value")),
        candidate_value=_num(c.get("candidate_value")),
        quantiles=tuple(
            _quantile(q, f"{where}.quantiles[{i}]") for i, q in enumerate(_list(c.get("quantiles"), where))
        ),
        mde_test=None if c.get("mde_test") is None else str(c.get("mde_test")),
        mde_planned=_num(c.get("mde_planned")),
        mde_planned_n=None if _num(c.get("mde_planned_n")) is None else int(c["mde_planned_n"]),
    )


def _checks(raw: Any) -> tuple[CheckView, ...]:
    out: list[CheckView] = []
    for i, cand in enumerate(_list(raw, "verdict.candidates")):
        c = _mapping(cand, f"verdict.candidates[{i}]")
        for j, check in enumerate(_list(c.get("checks"), f"verdict.candidates[{i}].checks")):
            k = _mapping(check, f"verdict.candidates[{i}].checks[{j}]")
            out.append(
                CheckView(
                    candidate=str(c.get("arm", "?")),
                    name=str(k.get("name", "?")),
                    status=str(k.get("status", "?")),
                    detail=str(k.get("detail", "")),
                    estimate=_num(k.get("estimate")),
                    ci_low=_num(k.get("ci_low")),
                    ci_high=_num(k.get("ci_high")),
                )
            )
    return tuple(out)


def _verdict(raw: Any) -> VerdictView | None:
    if raw is None:
        return None
    if isinstance(raw, str):  # a bare verdict string: accept it, with no reasons
        return VerdictView(raw, ())
    v = _mapping(raw, "verdict")
    reasons = v.get("reasons", ())
    reasons = [reasons] if isinstance(reasons, str) else _list(reasons, "verdict.reasons")
    more = _num(v.get("more_prompts"))
    return VerdictView(
        verdict=str(v.get("verdict", "unknown")),
        reasons=tuple(str(r) for r in reasons),
        recommended=None if v.get("recommended") is None else str(v.get("recommended")),
        more_prompts=None if more is None else int(more),
        design=None if v.get("design") is None else str(v.get("design")),
        checks=_checks(v.get("candidates")),
    )


def parse_snapshot(analysis: Any, *, computed_at: datetime, n_requests: int) -> SnapshotView:
    """Typed view of one snapshot; `SnapshotError` when it records a failure or is unreadable."""
    doc = _mapping(analysis, "analysis")
    error = doc.get("error")
    if error or doc.get("status") == "failed":
        raise SnapshotError(f"the latest analysis failed: {error or 'no reason recorded'}")
    health = doc.get("health") or {}
    health = _mapping(health, "health")
    checks = tuple(
        HealthView(
            name=str(_mapping(h, f"health.checks[{i}]").get("name", "?")),
            passed=None if h.get("passed") is None else bool(h.get("passed")),
            p_value=_num(h.get("p_value")),
            detail=str(h.get("detail", "")),
        )
        for i, h in enumerate(_list(health.get("checks"), "health.checks"))
    )
    return SnapshotView(
        computed_at=computed_at,
        n_requests=int(_num(doc.get("n_requests")) or n_requests),
        arms=tuple(str(a) for a in _list(doc.get("arms"), "arms")),
        control=None if doc.get("control") is None else str(doc.get("control")),
        alpha=_num(doc.get("alpha")),
        comparisons=tuple(
            _comparison(c, f"comparisons[{i}]")
            for i, c in enumerate(_list(doc.get("comparisons"), "comparisons"))
        ),
        health_passed=None if health.get("passed") is None else bool(health.get("passed")),
        health=checks,
        verdict=_verdict(doc.get("verdict")),
    )


def projected_mde(mde: float | None, n: int, target_n: int, kind: str) -> float | None:
    """MDE at `target_n` pairs from a fixed-horizon MDE at n (SE ∝ 1/√n); latency MDEs are ratios, scaled on
    the log. Only for old snapshots: the analysis now writes the plan's MDE at its planned n
    (`ComparisonView.mde_planned`), which for always-valid intervals does not scale as 1/√n."""
    if mde is None or n <= 0 or target_n <= 0:
        return None
    shrink = math.sqrt(n / target_n)
    if kind == "latency":
        return math.exp(math.log(mde) * shrink) if mde > 0 else None
    return mde * shrink
