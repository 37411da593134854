"""Render an Analysis as the JSON of the `analyze` contract or as a readable table."""

from __future__ import annotations

import math
from typing import Any

from analysis.analyze import Analysis, Comparison
from analysis.json_values import json_number as _num
from analysis.stats import HealthReport, QuantileDifference, TestResult


def _test_json(result: TestResult) -> dict[str, Any]:
    return {
        "test": result.test,
        "n": result.n,
        "estimate": _num(result.estimate),
        "ci_low": _num(result.ci_low),
        "ci_high": _num(result.ci_high),
        "p_value": _num(result.p_value),
        "statistic": _num(result.statistic),
        "df": _num(result.df),
        "null_value": result.null_value,
        "notes": list(result.notes),
    }


def _quantile_json(q: QuantileDifference) -> dict[str, Any]:
    return {
        "quantile": q.quantile,
        "n": q.n,
        "supported": q.supported,
        "method": q.method,
        "control": _num(q.control),
        "candidate": _num(q.candidate),
        "estimate": _num(q.estimate),
        "ci_low": _num(q.ci_low),
        "ci_high": _num(q.ci_high),
        "p_value": _num(q.p_value),
        "reason": q.reason,
    }


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """One comparison: the contract's keys first, then the details."""
    result = comparison.result
    primary = result.primary
    return {
        "metric": comparison.metric,
        "kind": result.kind,
        "control": comparison.control,
        "candidate": comparison.candidate,
        "n": primary.n,
        "estimate": _num(primary.estimate),
        "ci_low": _num(primary.ci_low),
        "ci_high": _num(primary.ci_high),
        "p_value": _num(primary.p_value),
        "p_adjusted": _num(comparison.p_adjusted),
        "test": primary.test,
        "statistic": _num(primary.statistic),
        "df": _num(primary.df),
        "null_value": primary.null_value,
        "se": _num(primary.se),
        "control_value": _num(result.control_mean),
        "candidate_value": _num(result.candidate_mean),
        "mde": _num(result.mde),
        "clustered": result.clustered,
        "cuped": result.cuped,
        "notes": list(primary.notes),
        "relative": None if result.relative is None else _test_json(result.relative),
        "robustness": [_test_json(r) for r in result.robustness],
        "quantiles": [_quantile_json(q) for q in result.quantiles],
    }


def health_json(health: HealthReport) -> dict[str, Any]:
    return {
        "passed": health.passed,
        "checks": [
            {"name": c.name, "passed": c.passed, "p_value": _num(c.p_value), "detail": c.detail}
            for c in health.checks
        ],
    }


def analysis_json(analysis: Analysis) -> dict[str, Any]:
    """The document printed by `shadowlab analyze --json` (contract: DESIGN §7, docs/analysis.md)."""
    return {
        "n_requests": analysis.n_requests,
        "arms": list(analysis.arms),
        "control": analysis.control,
        "alpha": analysis.alpha,
        "adjust": analysis.adjust,
        "comparisons": [comparison_json(c) for c in analysis.comparisons],
        "health": health_json(analysis.health),
        "verdict": None,
    }


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}g}"


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def analysis_text(analysis: Analysis) -> str:
    """A readable table: one line per comparison, quantile lines under latency metrics, then health."""
    head = [
        "metric",
        "kind",
        "candidate",
        "n",
        "estimate",
        f"{1 - analysis.alpha:.0%} CI",
        "p",
        "p adj",
        "test",
    ]
    lines: list[list[str]] = []
    for c in analysis.comparisons:
        p = c.result.primary
        ci = f"[{_fmt(p.ci_low)}, {_fmt(p.ci_high)}]"
        lines.append(
            [
                c.metric,
                c.result.kind,
                c.candidate,
                str(p.n),
                _fmt(p.estimate),
                ci,
                _fmt(p.p_value, 3),
                _fmt(c.p_adjusted, 3),
                p.test,
            ]
        )
        if c.result.relative is not None and c.result.relative.estimate is not None:
            r = c.result.relative
            lines.append(
                [
                    "",
                    "  relative",
                    "",
                    "",
                    _fmt(r.estimate),
                    f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]",
                    _fmt(r.p_value, 3),
                    "",
                    r.test,
                ]
            )
        for q in c.result.quantiles:
            label = f"  p{100 * q.quantile:g} diff"
            if q.supported:
                lines.append(
                    [
                        "",
                        label,
                        "",
                        str(q.n),
                        _fmt(q.estimate),
                        f"[{_fmt(q.ci_low)}, {_fmt(q.ci_high)}]",
                        _fmt(q.p_value, 3),
                        "",
                        q.method,
                    ]
                )
            else:
                lines.append(["", label, "", str(q.n), "—", "", "", "", f"not reported: {q.reason}"])
    widths = [max(len(r[i]) for r in [head, *lines]) for i in range(len(head))]
    out = [
        f"{analysis.n_requests} requests, arms: {', '.join(analysis.arms)} (control {analysis.control}); "
        f"p adjusted by {analysis.adjust}",
        "",
        _row(head, widths),
    ]
    out += [_row(r, widths) for r in lines]
    out += ["", f"health: {'passed' if analysis.health.passed else 'FAILED'}"]
    for check in analysis.health.checks:
        mark = {True: "ok  ", False: "FAIL", None: "n/a "}[check.passed]
        out.append(f"  {mark} {check.name}: {check.detail}")
    return "\n".join(out)


def verdict_text(document: dict[str, Any]) -> str:
    """The verdict and its reasons as lines a product manager can read."""
    verdict = document.get("verdict")
    if not verdict:
        return "verdict: none (no decision plan)"
    head = f"verdict: {verdict['verdict']}"
    if verdict["recommended"]:
        head += f" (recommended: {verdict['recommended']})"
    if verdict["more_prompts"] is not None and verdict["verdict"] == "keep_running":
        head += f", ≈{verdict['more_prompts']} more prompts"
    return "\n".join([head, *(f"  - {reason}" for reason in verdict["reasons"])])
