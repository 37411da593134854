"""The unit of analysis shown in the document: how clustered the primary metric's per-pair values are.

Requests of one conversation, and repeats of one prompt (same fingerprint, in any conversation), are not
independent; the tests use two-way cluster-robust standard errors on both (`analysis.stats.clustering`).
This reports, per dimension, how many clusters there are, the largest one's share and its design effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.csv_input import ExperimentTable, MetricColumn
from analysis.json_values import json_number as _num
from analysis.plan import DecisionPlan, PlanError, resolve_metric
from analysis.stats import ClusteringSummary, clustering_summary
from analysis.stats.distributions import FloatArray

__all__ = ["Clustering", "clustering_json", "clustering_of", "clustering_text"]


@dataclass(frozen=True)
class Clustering:
    """The clustering summary of one metric's per-pair values (candidate against the control)."""

    metric: str
    candidate: str
    dimensions: tuple[str, ...]
    summary: ClusteringSummary


def _primary_column(table: ExperimentTable, plan: DecisionPlan | None) -> MetricColumn:
    if plan is not None:
        try:
            column = resolve_metric(plan.primary_metric, {m.name: m.kind for m in table.metrics}).column
            return next(m for m in table.metrics if m.name == column)
        except PlanError:
            pass  # the verdict reports an unknown primary; the clustering falls back to the first metric
    return table.metrics[0]


def _pair_values(
    metric: MetricColumn, control: int, candidate: int
) -> tuple[FloatArray, np.ndarray[Any, np.dtype[np.bool_]]]:
    """The per-pair values the metric's test averages, and which requests they come from."""
    ctrl, cand = metric.values[:, control], metric.values[:, candidate]
    if metric.kind == "preference":  # on the candidate's row
        rows = ~np.isnan(cand)
        return cand[rows], rows
    if metric.kind == "latency":  # log ratio over pairs where both succeeded
        rows = np.isfinite(ctrl) & np.isfinite(cand)
        return np.log(cand[rows] / ctrl[rows]), rows
    rows = ~np.isnan(ctrl) & ~np.isnan(cand)
    return cand[rows] - ctrl[rows], rows


def clustering_of(
    table: ExperimentTable, *, control: str, candidate: str, plan: DecisionPlan | None = None
) -> Clustering | None:
    """For the plan's primary metric (else the first metric), `candidate` against `control`; None without
    clusters."""
    if table.clusters is None or not table.metrics:
        return None
    metric = _primary_column(table, plan)
    values, rows = _pair_values(metric, table.arms.index(control), table.arms.index(candidate))
    summary = clustering_summary(values, table.clusters[rows])
    return Clustering(metric.name, candidate, table.cluster_dimensions, summary)


def clustering_json(clustering: Clustering | None) -> dict[str, Any] | None:
    """The document's `clustering` block (null without clusters)."""
    if clustering is None:
        return None
    summary = clustering.summary
    return {
        "metric": clustering.metric,
        "candidate": clustering.candidate,
        "n": summary.n,
        "design_effect": _num(summary.design_effect),
        "dimensions": [
            {
                "name": name,
                "clusters": dim.clusters,
                "largest_share": dim.largest_share,
                "design_effect": _num(dim.design_effect),
                "used": dim.used,
            }
            for name, dim in zip(clustering.dimensions, summary.dimensions, strict=True)
        ],
    }


def clustering_text(block: dict[str, Any] | None) -> list[str]:
    """Lines for the readable output: one per dimension."""
    if block is None:
        return []

    def effect(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    lines = [
        f"clustering ({block['metric']}, {block['candidate']} vs control, {block['n']} pairs): "
        f"design effect {effect(block['design_effect'])}"
    ]
    for dim in block["dimensions"]:
        note = "" if dim["used"] else " (not used)"
        lines.append(
            f"  {dim['name']}: {dim['clusters']} clusters, largest {dim['largest_share']:.1%}, "
            f"design effect {effect(dim['design_effect'])}{note}"
        )
    return lines
