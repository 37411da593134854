"""`shadowlab analyze --from-csv`: the command of DESIGN §7, registered on the CLI by `register(app)`."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
import yaml

from analysis.analyze import analyze_table
from analysis.csv_input import CsvInputError, load_experiment_csv
from analysis.render import analysis_json, analysis_text
from analysis.stats import ADJUSTMENTS

EXIT_INVALID_INPUT = 2


class PlanError(Exception):
    """The --plan file cannot be used."""


@dataclass(frozen=True)
class PlanOptions:
    """What the analysis takes from a plan today; the decision rule will read the rest."""

    arms: list[str] | None = None
    aa_arm: str | None = None
    covariate_mean: float | None = None


def _read_plan(path: Path) -> PlanOptions:
    """Plan (YAML or JSON): `arms: [name | {name, role}]`, `aa_arm`, `covariate_mean`."""
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
    return PlanOptions(arms, aa_arm, None if covariate_mean is None else float(covariate_mean))


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
        table = load_experiment_csv(from_csv, control=control, metric_specs=metric, known_arms=options.arms)
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
    )
    if json_output:
        print(json.dumps(analysis_json(analysis), indent=2, allow_nan=False))
    else:
        print(analysis_text(analysis))
    return 0


def register(app: typer.Typer) -> None:
    """Add the `analyze` command to the shadowlab CLI."""

    @app.command("analyze")
    def analyze_command(
        from_csv: Path = typer.Option(
            ..., "--from-csv", help="Long CSV: request_id, arm, one column per metric."
        ),
        control: str = typer.Option(..., "--control", help="Name of the control arm."),
        metric: list[str] = typer.Option(
            [], "--metric", help="NAME=KIND (mean|binary|latency|cost|preference)."
        ),
        alpha: float = typer.Option(0.05, "--alpha", help="Two-sided significance level."),
        adjust: str = typer.Option("holm", "--adjust", help="Multiplicity adjustment: holm, bh or none."),
        json_output: bool = typer.Option(False, "--json", help="Print the JSON document instead of a table."),
        plan: Path | None = typer.Option(None, "--plan", help="Pre-registered plan (arms, A/A arm)."),
    ) -> None:
        """Paired statistics for every candidate against the control."""
        raise typer.Exit(analyze(from_csv, control, metric, alpha, adjust, json_output, plan))


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
