"""`shadowlab analyze` (a CSV or a stored experiment) and `shadowlab gate`: `register(app, settings_of)`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from analysis.analyze import analyze_table
from analysis.clustering import clustering_text
from analysis.csv_input import CsvInputError, load_experiment_csv
from analysis.plan import DecisionPlan
from analysis.plan import PlanError as DecisionPlanError
from analysis.render import analysis_text
from analysis.stats import ADJUSTMENTS
from analysis.verdict_json import analysis_document, pairwise_from_table

EXIT_INVALID_INPUT = 2


class PlanError(Exception):
    """The --plan file cannot be used."""


@dataclass(frozen=True)
class PlanOptions:
    """What the analysis takes from a plan today; the decision rule will read the rest."""

    arms: list[str] | None = None
    aa_arm: str | None = None
    covariate_mean: float | None = None
    decision: DecisionPlan | None = None
    failure_latency_ms: float | None = None
    judge_orders: tuple[int, int] | None = None


def _read_plan(path: Path) -> PlanOptions:
    """Plan (YAML or JSON): `arms: [name | {name, role}]`, `aa_arm`, `covariate_mean`, `failure_latency_ms`
    (what a failed replay counts as in latency ratios: the replay timeout), `judge_orders` ([pairs whose
    verdict flipped with the order, pairs judged both ways]: the judge-consistency check), and the decision
    plan (`primary_metric`, `guardrails`, … as in docs/analysis.md) when `primary_metric` is present."""
    try:
        plan = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PlanError(f"plan {path}: cannot read it: {exc}".replace("\n", " ")) from None
    if not isinstance(plan, dict):
        raise PlanError(f"plan {path}: expected a mapping at the top level, found {type(plan).__name__}")
    arms: list[str] | None = None
    aa_arm = plan.get("aa_arm")
    if "arms" in plan:
        if not isinstance(plan["arms"], list):
            raise PlanError(f"plan {path}, key arms: expected a list of arm names")
        arms = []
        for item in plan["arms"]:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str):
                raise PlanError(f"plan {path}, key arms: expected an arm name, found {item!r}")
            arms.append(name)
            if isinstance(item, dict) and item.get("role") == "aa":
                aa_arm = name
    if aa_arm is not None and not isinstance(aa_arm, str):
        raise PlanError(f"plan {path}, key aa_arm: expected an arm name, found {aa_arm!r}")
    covariate_mean = plan.get("covariate_mean")
    if covariate_mean is not None and not isinstance(covariate_mean, int | float):
        raise PlanError(f"plan {path}, key covariate_mean: expected a number, found {covariate_mean!r}")
    failure_latency = plan.get("failure_latency_ms")
    if failure_latency is not None and (
        isinstance(failure_latency, bool)
        or not isinstance(failure_latency, int | float)
        or failure_latency <= 0
    ):
        raise PlanError(
            f"plan {path}, key failure_latency_ms: expected a positive number (the replay timeout in ms), "
            f"found {failure_latency!r}"
        )
    judge_orders = plan.get("judge_orders")
    if judge_orders is not None and not (
        isinstance(judge_orders, list)
        and len(judge_orders) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in judge_orders)
        and judge_orders[0] <= judge_orders[1]
    ):
        raise PlanError(
            f"plan {path}, key judge_orders: expected [flipped, judged both ways] (two whole numbers, the "
            f"first at most the second), found {judge_orders!r}"
        )
    decision = None
    if "primary_metric" in plan:
        try:
            decision = DecisionPlan.from_dict(plan, where=f"plan {path}")
        except DecisionPlanError as exc:
            raise PlanError(str(exc)) from None
    return PlanOptions(
        arms,
        aa_arm,
        None if covariate_mean is None else float(covariate_mean),
        decision,
        None if failure_latency is None else float(failure_latency),
        None if judge_orders is None else (judge_orders[0], judge_orders[1]),
    )


def _print_document(document: dict[str, Any], text: str, json_output: bool) -> None:
    if json_output:
        print(json.dumps(document, indent=2, allow_nan=False))
    else:
        print(text)


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


def analyze(
    from_csv: Path,
    control: str,
    metric: list[str],
    alpha: float,
    adjust: str,
    json_output: bool,
    plan: Path | None,
) -> int:
    """Analyse a long CSV of replays; print JSON or a table; return the exit code (2: invalid input)."""
    try:
        if not 0.0 < alpha < 1.0:
            raise CsvInputError(f"--alpha: expected a number between 0 and 1, found {alpha}")
        if adjust not in ADJUSTMENTS:
            raise CsvInputError(f"--adjust: expected one of {', '.join(ADJUSTMENTS)}, found {adjust!r}")
        options = _read_plan(plan) if plan is not None else PlanOptions()
        if options.decision is not None and options.decision.alpha != alpha:
            raise PlanError(
                f"--alpha {alpha} differs from the plan's pre-registered alpha {options.decision.alpha}"
            )
        table = load_experiment_csv(from_csv, control=control, metric_specs=metric, known_arms=options.arms)
        if options.decision is not None:
            try:
                options.decision.check_metrics({m.name: m.kind for m in table.metrics})
            except DecisionPlanError as exc:
                raise PlanError(f"plan {plan}: {exc}") from None
    except (CsvInputError, PlanError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    adjustment = next(a for a in ADJUSTMENTS if a == adjust)
    analysis = analyze_table(
        table,
        control=control,
        alpha=alpha,
        adjust=adjustment,
        aa_arm=options.aa_arm,
        covariate_mean=options.covariate_mean,
        failure_latency_ms=options.failure_latency_ms,
        judge_orders=options.judge_orders,
    )
    document, _ = analysis_document(analysis, options.decision, pairwise_from_table(table, control), table)
    text = "\n".join([analysis_text(analysis), *clustering_text(document["clustering"])])
    _print_document(
        document, text if options.decision is None else f"{text}\n\n{verdict_text(document)}", json_output
    )
    return 0


SettingsOf = Callable[[typer.Context], Any]


def register(app: typer.Typer, settings_of: SettingsOf | None = None) -> None:
    """Add `analyze` and `gate` to the shadowlab CLI; `settings_of` gives the database settings."""
    from analysis.experiment_command import analyze_stored, gate, report, route

    def need_settings(ctx: typer.Context) -> Any:
        if settings_of is None:
            raise typer.BadParameter("this command needs the shadowlab settings (run it as `shadowlab`)")
        return settings_of(ctx)

    @app.command("analyze")
    def analyze_command(
        ctx: typer.Context,
        experiment: str | None = typer.Argument(
            None, help="Name of a stored experiment (its plan is applied); or use --from-csv."
        ),
        from_csv: Path | None = typer.Option(
            None, "--from-csv", help="Long CSV: request_id, arm, one column per metric."
        ),
        control: str | None = typer.Option(
            None, "--control", help="Name of the control arm (with --from-csv)."
        ),
        metric: list[str] = typer.Option(
            [], "--metric", help="NAME=KIND (mean|binary|latency|cost|preference)."
        ),
        alpha: float = typer.Option(0.05, "--alpha", help="Two-sided significance level."),
        adjust: str = typer.Option("holm", "--adjust", help="Multiplicity adjustment: holm, bh or none."),
        json_output: bool = typer.Option(False, "--json", help="Print the JSON document instead of a table."),
        plan: Path | None = typer.Option(
            None, "--plan", help="Pre-registered plan (arms, A/A arm, decision)."
        ),
        export_csv: Path | None = typer.Option(
            None, "--export-csv", help="With EXPERIMENT: also write its data as the long CSV."
        ),
        export_plan: Path | None = typer.Option(
            None, "--export-plan", help="With EXPERIMENT: also write its plan for --from-csv --plan."
        ),
    ) -> None:
        """Paired statistics for every candidate against the control, and the verdict when a plan is set."""
        if (experiment is None) == (from_csv is None):
            print("error: give either EXPERIMENT or --from-csv FILE (exactly one)", file=sys.stderr)
            raise typer.Exit(EXIT_INVALID_INPUT)
        if from_csv is not None:
            if control is None:
                print("error: --control: required with --from-csv", file=sys.stderr)
                raise typer.Exit(EXIT_INVALID_INPUT)
            raise typer.Exit(analyze(from_csv, control, metric, alpha, adjust, json_output, plan))
        assert experiment is not None
        code = analyze_stored(need_settings(ctx), experiment, json_output, export_csv, export_plan)
        raise typer.Exit(code)

    @app.command("gate")
    def gate_command(
        ctx: typer.Context,
        experiment: str = typer.Argument(..., help="Name of a stored experiment with a plan."),
        fail_on: str = typer.Option(
            "dont_ship,inconclusive,keep_running,invalid",
            "--fail-on",
            help="Comma-separated verdicts that fail the gate (exit 1). `invalid` (a health check failed: "
            "the data cannot support a verdict) blocks by default; drop it only to let broken data pass.",
        ),
        json_output: bool = typer.Option(False, "--json", help="Print the verdict block as JSON."),
    ) -> None:
        """CI/CD gate: exit 1 with the reasons when the verdict is one of --fail-on, else 0."""
        raise typer.Exit(gate(need_settings(ctx), experiment, fail_on, json_output))

    @app.command("route")
    def route_command(
        ctx: typer.Context,
        experiment: str = typer.Argument(..., help="Name of a stored experiment with a plan."),
        export: Path | None = typer.Option(
            None, "--export", help="Write the routing table (YAML; JSON when FILE ends in .json)."
        ),
        by: str = typer.Option("route", "--by", help="Segment dimension: route, service, tag:<key>, …"),
        min_n: int = typer.Option(30, "--min-n", help="Segments with fewer pairs are too small to route."),
        json_output: bool = typer.Option(False, "--json", help="Print the routing block as JSON."),
    ) -> None:
        """Per segment, the cheapest arm that holds the plan there; the saving and the quality risk."""
        raise typer.Exit(route(need_settings(ctx), experiment, export, by, min_n, json_output))

    @app.command("report")
    def report_command(
        ctx: typer.Context,
        experiment: str = typer.Argument(..., help="Name of a stored experiment."),
        fmt: str = typer.Option("md", "--format", help="md, html (one self-contained file) or json."),
        out: Path | None = typer.Option(None, "--out", help="Write to FILE instead of stdout."),
    ) -> None:
        """The experiment report: verdict, metrics, health, power, segments, routing, prices, history."""
        raise typer.Exit(report(need_settings(ctx), experiment, fmt, out))


def main() -> None:
    """Standalone entry point, for use before the command is wired into `shadowlab`."""
    app = typer.Typer(add_completion=False)
    register(app)

    @app.callback()
    def _root() -> None:
        """shadowlab analysis."""

    app()


if __name__ == "__main__":
    main()
