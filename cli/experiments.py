"""`shadowlab experiment …` and `shadowlab replay` (replayer/command.py), wired with what `experiment create`
checks across the stages, which the replayer may not import: the spec's `scoring` section (scoring's own
validation) and the plan's metrics (those the analysis will load for this spec). A typo in either is one
`error:` line at create, not a failure at the first analysis hours later."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from shadowlab.config import Settings

if TYPE_CHECKING:
    from shadowlab.experiment import ExperimentSpec

__all__ = ["check_new_spec", "register"]

# Human labels are preferences of scorer `human:<labeler>` (scoring/labels.py): known only once labelled.
HUMAN_PREFERENCES = "pref_human:"


def register(app: typer.Typer, settings_of: Callable[[typer.Context], Settings]) -> None:
    """The replayer's commands, `experiment create` checking its spec with `check_new_spec`."""
    from replayer.command import register as register_replayer

    register_replayer(app, settings_of, check_spec=check_new_spec)


def check_new_spec(spec: ExperimentSpec, where: str) -> None:
    """An `ExperimentSpecError` naming the field when the `scoring` section is invalid or a plan metric
    (primary, guardrail) is none the experiment's data will have: the built-in metrics, one per pointwise
    scorer and `pref_<name>` per pairwise judge."""
    from analysis.load import _metric_columns
    from analysis.plan import ALIASES, PlanError, resolve_metric
    from scoring.base import ScorerConfigError
    from scoring.registry import scoring_spec
    from shadowlab.experiment import ExperimentSpecError

    try:
        scorers = scoring_spec(spec.model_dump(mode="json"))
    except ScorerConfigError as exc:
        raise ExperimentSpecError(f"{where}: {exc}") from None
    pointwise = [j.name for j in scorers.judges if j.kind == "pointwise"] + [c.name for c in scorers.checks]
    pairwise = [j.name for j in scorers.judges if j.kind == "pairwise"]
    columns = _metric_columns(dict.fromkeys(pointwise, ""), pairwise)
    named = [("plan.primary_metric", spec.plan.primary_metric)]
    named += [(f"plan.guardrails[{i}].metric", g.metric) for i, g in enumerate(spec.plan.guardrails)]
    for field, metric in named:
        if metric.startswith(HUMAN_PREFERENCES):
            continue
        try:
            resolve_metric(metric, columns)
        except PlanError:
            raise ExperimentSpecError(
                f"{where}: {field}: expected a metric this experiment will have ({', '.join(columns)}; "
                f"also {', '.join(ALIASES)}; a latency quantile such as ttft_p95; a scorer once `scoring` "
                f"names it), found {metric!r}"
            ) from None
