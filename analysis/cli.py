"""The analysis commands of `shadowlab`: `analyze` (stored experiment or long CSV), `gate`, `route`, `report`.

The statistics (numpy, scipy) and database modules are imported inside the functions: every `shadowlab`
command loads this module to register these, and the others (ingest, replay, score, …) need neither. A
command on a stored experiment starts reading it (`analysis.load_start`) before it imports the statistics,
so Postgres reads the replays while Python imports scipy; the errors that mean bad input are looked up only
when something was raised (`_bad_input`), for the same reason.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from analysis.cli_inputs import DEFAULT_ADJUST, DEFAULT_ALPHA, DIMENSIONS_HELP, AnalyzeInputs, check_dimension
from shadowlab.files import output_file, write_output

EXIT_INVALID_INPUT = 2
EXIT_GATE_BLOCKED = 1
SettingsOf = Callable[[typer.Context], Any]


def _print_document(document: dict[str, Any], text: str, json_output: bool) -> None:
    if json_output:
        print(json.dumps(document, indent=2, allow_nan=False))
    else:
        print(text)


def analyze_csv(
    from_csv: Path,
    control: str,
    metric: list[str],
    alpha: float,
    adjust: str,
    json_output: bool,
    plan: Path | None,
) -> int:
    """Analyse a long CSV of replays; print JSON or a table; return the exit code (2: invalid input)."""
    from analysis.analyze import analyze_table
    from analysis.clustering import clustering_text
    from analysis.csv_input import CsvInputError, load_experiment_csv
    from analysis.document import analysis_document
    from analysis.plan import PlanError, PlanOptions, read_plan
    from analysis.ranking import pairwise_from_table, rank_arms
    from analysis.render import analysis_text, verdict_text
    from analysis.stats import ADJUSTMENTS

    try:
        if not 0.0 < alpha < 1.0:
            raise CsvInputError(f"--alpha: expected a number between 0 and 1, found {alpha}")
        if adjust not in ADJUSTMENTS:
            raise CsvInputError(f"--adjust: expected one of {', '.join(ADJUSTMENTS)}, found {adjust!r}")
        options = read_plan(plan) if plan is not None else PlanOptions()
        if options.decision is not None and options.decision.alpha != alpha:
            raise PlanError(
                f"--alpha {alpha} differs from the plan's pre-registered alpha {options.decision.alpha}"
            )
        table = load_experiment_csv(from_csv, control=control, metric_specs=metric, known_arms=options.arms)
        if options.decision is not None:
            try:
                options.decision.check_metrics({m.name: m.kind for m in table.metrics})
            except PlanError as exc:
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
    ranking = rank_arms(table.arms, control, pairwise_from_table(table, control))
    document, _ = analysis_document(analysis, options.decision, ranking, table)
    text = "\n".join([analysis_text(analysis), *clustering_text(document["clustering"])])
    _print_document(
        document, text if options.decision is None else f"{text}\n\n{verdict_text(document)}", json_output
    )
    return 0


class _FormatError(ValueError):
    """An unknown `report --format`."""


def _bad_input(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """The exceptions that mean bad input (exit 2). Called in an `except` clause, so evaluated only once
    something was raised: importing `analysis.plan` imports the statistics."""
    from analysis.load_start import ExperimentLoadError
    from analysis.plan import PlanError

    return (ExperimentLoadError, PlanError, *more)


def _routing_errors() -> tuple[type[Exception], ...]:
    from analysis.routing_table import RoutingTableError
    from analysis.segments import SegmentError

    return RoutingTableError, SegmentError


def _analysis(experiment: str, **options: Any) -> Callable[[Any], Any]:
    """The work of analysing the experiment in a session (imports the statistics when it runs)."""

    def work(session: Any) -> Any:
        from analysis.experiment_analysis import analyze_experiment

        return analyze_experiment(session, experiment, **options)

    return work


def _run(settings: Any, experiment: str) -> Any:
    """Analyse the experiment in one transaction (the snapshot row commits with it)."""
    return _session_run(settings, _analysis(experiment), experiment=experiment)


def analyze_stored(
    settings: Any, experiment: str, json_output: bool, export_csv: Path | None, export_plan: Path | None
) -> int:
    """Print the analyze document of a stored experiment; optionally export its CSV and plan."""
    try:
        report = _run(settings, experiment)
    except _bad_input() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    from analysis.clustering import clustering_text
    from analysis.experiment_analysis import export_plan as plan_for_csv
    from analysis.load import table_to_csv
    from analysis.render import verdict_text

    if export_csv is not None:
        write_output(export_csv, table_to_csv(report.data.table), "--export-csv")
    if export_plan is not None:
        write_output(export_plan, json.dumps(plan_for_csv(report.data), indent=2), "--export-plan")
    if json_output:
        print(json.dumps(report.document, indent=2, allow_nan=False))
    else:
        doc = report.document
        print(f"experiment {experiment}: {doc['n_requests']} requests, arms {', '.join(doc['arms'])}")
        print(verdict_text(doc) if doc["verdict"] or "note" not in doc else doc["note"])
        for line in clustering_text(doc.get("clustering")):
            print(line)
        print(f"(snapshot {report.snapshot_id} stored; --json for every comparison)")
    return 0


def parse_fail_on(text: str) -> tuple[str, ...]:
    """`dont_ship,inconclusive` → the verdict names; unknown names are an error."""
    from analysis.verdict_names import VERDICTS

    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in VERDICTS]
    if unknown or not names:
        raise ValueError(
            f"--fail-on: expected verdicts among {', '.join(VERDICTS)}, found {', '.join(unknown) or 'none'}"
        )
    return names


def gate(settings: Any, experiment: str, fail_on: str, json_output: bool) -> int:
    """Exit 0 when the verdict may deploy, 1 (with reasons) when it is one of `fail_on`, 2 on bad input."""
    try:  # before anything is imported for the analysis (`_bad_input` imports the statistics)
        blocking = parse_fail_on(fail_on)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    try:
        report = _run(settings, experiment)
    except _bad_input(ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    if report.verdict is None:
        print(
            f"error: experiment {experiment!r} has no pre-registered plan; the gate needs one",
            file=sys.stderr,
        )
        return EXIT_INVALID_INPUT
    verdict = report.document["verdict"]
    blocked = report.verdict in blocking
    if json_output:
        print(json.dumps({"gate": "blocked" if blocked else "passed", **verdict}, indent=2, allow_nan=False))
    else:
        status = "BLOCKED" if blocked else "passed"
        print(f"gate {status}: experiment {experiment} verdict {report.verdict}")
        for reason in report.reasons:
            print(f"  - {reason}")
    if blocked:
        print(f"gate blocked: verdict {report.verdict} is in --fail-on {','.join(blocking)}", file=sys.stderr)
        return EXIT_GATE_BLOCKED
    return 0


def _session_run(settings: Any, work: Any, *, experiment: str | None = None) -> Any:
    """Run `work(session)` in one transaction on the configured database; with `experiment`, its read has
    started before `work` runs (and imports the statistics)."""
    from analysis.load_start import checked_engine, discard_started, start_in_session
    from shadowlab.db import session_factory, session_scope

    engine = checked_engine(settings)
    try:
        with session_scope(session_factory(engine)) as session:
            if experiment is not None:
                start_in_session(session, experiment, database_url=settings.database_url)
            try:
                return work(session)
            finally:
                discard_started(session)
    finally:
        engine.dispose()


def route(
    settings: Any, experiment: str, export: Path | None, dimension: str, min_n: int, json_output: bool
) -> int:
    """Print the routing recommendation; with `export`, write it as a routing table (YAML or .json)."""

    def work(session: Any) -> Any:
        from analysis.routing import RoutingRule

        rule = RoutingRule(dimension=dimension, min_n=min_n)
        return _analysis(experiment, store=False, rule=rule)(session)

    try:
        report = _session_run(settings, work, experiment=experiment)
        from analysis.document import routing_json
        from analysis.plan import PlanError
        from analysis.routing_table import table_from_recommendation, write_routing_table

        if not report.data.has_replays:
            return _nothing_yet(experiment, "route", json_output)
        if report.routing is None:
            raise PlanError(
                f"experiment {experiment!r}: routing needs a pre-registered plan and the dimension "
                f"{dimension!r} in its requests ({DIMENSIONS_HELP})"
            )
        if export is not None:
            table = table_from_recommendation(report.routing, experiment, report.data.arm_models)
            write_routing_table(table, export)
    except _bad_input(*_routing_errors()) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    block = routing_json(report.routing)
    if json_output:
        print(json.dumps(block, indent=2, allow_nan=False))
        return 0
    from analysis.report import saving_sentence
    from analysis.routing_text import nothing_moves

    for s in block["segments"]:
        print(f"{s['segment']:<32} {s['share']:>6.1%}  → {s['arm']:<12} {s['status']}")
    print(saving_sentence(block) or "no cost metric: no saving")
    for line in block["risk"] if nothing_moves(block) is None else []:  # else the sentence above says it
        print(f"  - {line}")
    return 0


def _nothing_yet(experiment: str, what: str, json_output: bool) -> int:
    """Say that an experiment without replays has nothing to `what` yet (exit 0; nothing is written)."""
    from analysis.experiment_analysis import no_replays_message

    note = no_replays_message(experiment, what)
    if json_output:
        print(json.dumps({"experiment": experiment, "n_requests": 0, "note": note}, indent=2))
    else:
        print(f"experiment {experiment}: {note}")
    return 0


def report(settings: Any, experiment: str, fmt: str, out: Path | None) -> int:
    """Write the experiment report (md, html or json) to `out` or stdout."""

    def work(session: Any) -> Any:
        from analysis.report import REPORT_FORMATS, report_document

        if fmt not in REPORT_FORMATS:  # checked here: analysis.report imports the statistics
            raise _FormatError(f"--format: expected one of {', '.join(REPORT_FORMATS)}, found {fmt!r}")
        return report_document(session, experiment)

    try:
        doc = _session_run(settings, work, experiment=experiment)
    except _bad_input(_FormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    if doc["n_requests"] == 0:
        return _nothing_yet(experiment, "report", fmt == "json")
    from analysis.report import report_json, report_markdown
    from analysis.report_html import report_html

    text = report_json(doc) if fmt == "json" else report_html(doc) if fmt == "html" else report_markdown(doc)
    if out is None:
        sys.stdout.write(text)
    else:
        write_output(out, text, "--out")
    return 0


def register(app: typer.Typer, settings_of: SettingsOf | None = None) -> None:
    """Add `analyze`, `gate`, `route` and `report` to the CLI; `settings_of` gives the database settings."""

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
        alpha: float = typer.Option(DEFAULT_ALPHA, "--alpha", help="Two-sided significance level."),
        adjust: str = typer.Option(
            DEFAULT_ADJUST, "--adjust", help="Multiplicity adjustment: holm, bh or none."
        ),
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
        AnalyzeInputs(
            experiment, from_csv, control, tuple(metric), alpha, adjust, plan, export_csv, export_plan
        ).check()
        if from_csv is not None:
            assert control is not None
            raise typer.Exit(analyze_csv(from_csv, control, metric, alpha, adjust, json_output, plan))
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
        by: str = typer.Option("route", "--by", help=f"Segment dimension: {DIMENSIONS_HELP}."),
        min_n: int = typer.Option(
            30, "--min-n", min=2, help="Segments with fewer pairs are too small to route."
        ),
        json_output: bool = typer.Option(False, "--json", help="Print the routing block as JSON."),
    ) -> None:
        """Per segment, the cheapest arm that holds the plan there; the saving and the quality risk."""
        check_dimension(by)
        output_file(export, "--export")
        raise typer.Exit(route(need_settings(ctx), experiment, export, by, min_n, json_output))

    @app.command("report")
    def report_command(
        ctx: typer.Context,
        experiment: str = typer.Argument(..., help="Name of a stored experiment."),
        fmt: str = typer.Option("md", "--format", help="md, html (one self-contained file) or json."),
        out: Path | None = typer.Option(None, "--out", help="Write to FILE instead of stdout."),
    ) -> None:
        """The experiment report: verdict, metrics, health, power, segments, routing, prices, history."""
        output_file(out, "--out")
        raise typer.Exit(report(need_settings(ctx), experiment, fmt, out))
