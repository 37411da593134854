"""`shadowlab experiment …` and `shadowlab replay` (replayer/command.py), wired with what `experiment create`
checks across the stages, which the replayer may not import: the spec's `scoring` section (scoring's own
validation) and the plan's metrics (those the analysis will load for this spec). A typo in either is one
`error:` line at create, not a failure at the first analysis hours later. So is a model without a price
(with the settings' price file: the hook has no settings of its own)."""

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
    """The replayer's commands, `experiment create` checking its spec with `check_new_spec` and its models'
    prices (`check_priced`, against SHADOWLAB_PRICES_FILE or the shipped table, as `start` does again)."""
    from replayer.command import register as register_replayer

    def check_spec(ctx: typer.Context, spec: ExperimentSpec, where: str) -> None:
        from shadowlab.experiment import check_priced
        from shadowlab.pricing import load_price_table

        check_new_spec(spec, where)
        check_priced(spec, load_price_table(settings_of(ctx).prices_file), where)

    register_replayer(app, settings_of, check_spec=check_spec)


def check_new_spec(spec: ExperimentSpec, where: str) -> None:
    """An `ExperimentSpecError` naming the field when the `scoring` section is invalid or the plan names a
    metric (primary, guardrail, `metric_directions`, `no_harm_margins`) the experiment's data will not have:
    the built-in metrics, one per pointwise scorer and `pref_<name>` per pairwise judge."""
    from scoring.base import ScorerConfigError
    from scoring.registry import scoring_spec
    from shadowlab.experiment import ExperimentSpecError

    try:
        scorers = scoring_spec(spec.model_dump(mode="json"))
    except ScorerConfigError as exc:
        raise ExperimentSpecError(f"{where}: {exc}") from None
    pointwise = [j.name for j in scorers.judges if j.kind == "pointwise"] + [c.name for c in scorers.checks]
    pairwise = [j.name for j in scorers.judges if j.kind == "pairwise"]
    problem = _plan_metric_problem(spec, pointwise, pairwise)
    if problem is not None:
        raise ExperimentSpecError(f"{where}: {problem}")


def _plan_metric_problem(spec: ExperimentSpec, pointwise: list[str], pairwise: list[str]) -> str | None:
    """The first plan field naming a metric the experiment will not have, and what it may name."""
    from analysis.load import metric_columns
    from analysis.plan import ALIASES, DEFAULT_NO_HARM_MARGINS, PlanError, resolve_metric

    columns = metric_columns(dict.fromkeys(pointwise, ""), pairwise)
    listed = ", ".join(columns)
    named = [("plan.primary_metric", spec.plan.primary_metric)]
    named += [(f"plan.guardrails[{i}].metric", g.metric) for i, g in enumerate(spec.plan.guardrails)]
    for field, metric in named:
        if metric.startswith(HUMAN_PREFERENCES):
            continue
        try:
            resolve_metric(metric, columns)
        except PlanError:
            return (
                f"{field}: expected a metric this experiment will have ({listed}; also {', '.join(ALIASES)}; "
                f"a latency quantile such as ttft_p95; a scorer once `scoring` names it), found {metric!r}"
            )
    # These two are looked up by column name, no alias (and margins by kind too): another key is ignored.
    kinds = tuple(DEFAULT_NO_HARM_MARGINS)
    keyed: list[tuple[str, str, tuple[str, ...]]] = [
        ("plan.metric_directions", key, ()) for key in spec.plan.metric_directions
    ]
    keyed += [("plan.no_harm_margins", key, kinds) for key in spec.plan.no_harm_margins]
    for field, key, also in keyed:
        if key not in columns and key not in also and not key.startswith(HUMAN_PREFERENCES):
            kind_words = f"; or a kind: {', '.join(also)}" if also else ""
            return f"{field}: expected a metric column as key ({listed}{kind_words}), found {key!r}"
    return None
